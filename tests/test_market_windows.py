"""Leakage-free windows: expanding folds by time, scalers fitted on training windows, the validation split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.market import windows
from tasks.market.synthetic import synthetic_prices
from tests.conftest import uneven_prices


def loop_reference(prices: pd.DataFrame, start, stop, *, lag: int, horizon: int) -> dict:
    """The tutorial loop, per symbol: features, a scaler fitted on the rows dated before ``start``, windows
    appended slice by slice, then split by date."""
    out = {}
    for symbol, group in prices.groupby("symbol", sort=True):
        log_price = np.log(group["price"].to_numpy(dtype=float))
        volume = np.log1p(np.nan_to_num(group["volume"].to_numpy(dtype=float), nan=0.0))
        features = np.column_stack([np.diff(log_price), volume[1:]])
        log_price, dates = log_price[1:], group["date"].to_numpy()[1:]
        fit = features[dates < start]
        mean, std = (fit.mean(axis=0), fit.std(axis=0)) if len(fit) >= 2 else (np.zeros(2), np.ones(2))
        std = np.where(std > 0, std, 1.0)
        scaled = (features - mean) / std
        x, y, end = [], [], []
        for i in range(lag, len(scaled) - horizon + 1):
            x.append(scaled[i - lag:i])
            y.append(log_price[i - 1 + horizon] - log_price[i - 1])
            end.append(i - 1)
        x, y, end = np.array(x).reshape(-1, lag, 2), np.array(y), np.array(end, dtype=int)
        train = dates[end + horizon] < start if len(y) else np.zeros(0, bool)
        test = (dates[end] >= start) & (dates[end] < stop) if len(y) else np.zeros(0, bool)
        if len(fit) + 1 < max(lag, 2):  # rows before the split, counting the first (which has no return)
            test &= False
        out[symbol] = {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test],
                       "mean": mean, "std": std}
    return out


def fold_by_symbol(fold: windows.FoldWindows) -> dict:
    out = {}
    for s, symbol in enumerate(fold.symbols):
        x_train, y_train = windows.gather_windows(fold, np.arange(*fold.train[s]))
        x_test, y_test = windows.gather_windows(fold, np.arange(*fold.test[s]))
        out[str(symbol)] = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
                            "mean": fold.mean[s], "std": fold.std[s]}
    return out


class TestFoldWindows:
    @pytest.mark.parametrize("block_rows", [1, 16, 1 << 17])
    @pytest.mark.parametrize("lag, horizon", [(5, 1), (3, 2), (20, 1)])
    def test_equal_to_the_tutorial_loop(self, lag: int, horizon: int, block_rows: int) -> None:
        prices = uneven_prices()
        dates = prices["date"].to_numpy()
        start, stop = np.datetime64("2024-02-12", "ns"), np.datetime64("2024-03-15", "ns")
        ours = fold_by_symbol(windows.fold_windows(prices, start, stop, lag=lag, horizon=horizon,
                                                   block_rows=block_rows))
        loop = loop_reference(prices, start, stop, lag=lag, horizon=horizon)
        assert list(ours) == list(loop) == ["AAA", "BBB", "CCC"] and dates.min() < start < dates.max()
        for symbol, ref in loop.items():
            for key in ("x_train", "y_train", "x_test", "y_test"):
                assert ours[symbol][key].dtype == np.float32 and ours[symbol][key].shape == ref[key].shape
                np.testing.assert_array_equal(ours[symbol][key], ref[key].astype(np.float32), err_msg=key)
            np.testing.assert_allclose(ours[symbol]["mean"], ref["mean"], rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(ours[symbol]["std"], ref["std"], rtol=1e-12)
        assert len(loop["AAA"]["y_train"]) > 0 and len(loop["AAA"]["y_test"]) > 0 and len(loop["CCC"]["y_test"]) == 0

    def test_a_symbol_listed_just_before_the_split_is_not_tested_with_an_unfitted_scaler(self) -> None:
        prices = uneven_prices()
        late = prices[prices["symbol"] == "AAA"].assign(symbol="LATE").iloc[27:]  # 3 rows before 2024-02-12
        fold = windows.fold_windows(pd.concat([prices, late], ignore_index=True), np.datetime64("2024-02-12"),
                                    np.datetime64("2024-03-15"), lag=5)
        tested = dict(zip(fold.symbols.tolist(), (fold.test[:, 1] - fold.test[:, 0]).tolist(), strict=True))
        assert tested["LATE"] == 0 and tested["AAA"] > 0

    def test_a_symbol_listed_during_validation_is_scaled_on_its_rows_before_the_test(self) -> None:
        prices = uneven_prices()
        late = prices[prices["symbol"] == "AAA"].assign(symbol="LATE").iloc[22:]  # 3 rows before validation
        frame = pd.concat([prices, late], ignore_index=True)
        start, validation = np.datetime64("2024-02-12"), np.datetime64("2024-02-05")
        fold = windows.fold_windows(frame, start, np.datetime64("2024-03-15"), lag=5, scale_before=validation)
        s = fold.symbols.tolist().index("LATE")
        assert fold.test[s, 1] > fold.test[s, 0] and fold.std[s].tolist() != [1.0, 1.0]
        before_test = late[late["date"] < pd.Timestamp(start)]
        assert fold.mean[s, 0] == pytest.approx(np.diff(np.log(before_test["price"])).mean())

    def test_windows_are_views_and_splits_are_ranges(self) -> None:
        prices = uneven_prices()
        fold = windows.fold_windows(prices, np.datetime64("2024-02-12"), np.datetime64("2024-03-15"), lag=5)
        assert np.shares_memory(fold.x, fold.scaled) and fold.x.shape == (len(prices) - 4, 5, 2)
        starts = windows.window_starts(fold.train)
        assert len(starts) == np.diff(fold.train, axis=1).sum() and np.all(np.diff(starts) > 0)
        assert windows.window_symbols(fold.train).tolist() == [s for s, (lo, hi) in enumerate(fold.train)
                                                               for _ in range(lo, hi)]
        assert fold.mean.shape == fold.std.shape == (3, 2) and fold.std[2].tolist() == [1.0, 1.0]

    def test_unsorted_prices_are_refused(self) -> None:
        prices = uneven_prices()
        with pytest.raises(ValueError, match="sorted by symbol then date"):
            windows.fold_windows(prices.iloc[::-1], np.datetime64("2024-02-12"), np.datetime64("2024-03-15"), lag=5)
        with pytest.raises(ValueError, match="sorted by symbol then date"):
            windows.fold_windows(prices.iloc[[1, 0, *range(2, len(prices))]], np.datetime64("2024-02-12"),
                                 np.datetime64("2024-03-15"), lag=5)
        with pytest.raises(ValueError, match="without repeated dates"):
            windows.fold_windows(prices.iloc[[0, 0, *range(1, len(prices))]], np.datetime64("2024-02-12"),
                                 np.datetime64("2024-03-15"), lag=5)

    def test_no_leakage_changing_anything_after_the_split(self) -> None:
        prices = synthetic_prices(symbols=2, days=200, seed=1)
        prices["date"] = pd.to_datetime(prices["date"])
        prices["price"] = prices["close"]
        bounds = windows.fold_boundaries(prices["date"].to_numpy(), 2)
        before = fold_by_symbol(windows.fold_windows(prices, bounds[0], bounds[1], lag=10, horizon=1))
        changed = prices.copy()
        after_split = changed["date"] >= bounds[0]
        changed.loc[after_split, "price"] *= np.random.default_rng(0).uniform(0.5, 2, after_split.sum())
        changed.loc[after_split, "volume"] = 1
        after = fold_by_symbol(windows.fold_windows(changed, bounds[0], bounds[1], lag=10, horizon=1))
        for symbol in before:
            for key in ("x_train", "y_train", "mean", "std"):
                np.testing.assert_array_equal(before[symbol][key], after[symbol][key], err_msg=key)
            assert len(before[symbol]["y_train"]) > 100
            assert not np.array_equal(before[symbol]["y_test"], after[symbol]["y_test"])

    def test_linear_window_equals_ridge(self) -> None:
        from sklearn.linear_model import Ridge

        prices = synthetic_prices(symbols=3, days=120, seed=2)
        prices["date"] = pd.to_datetime(prices["date"])
        prices["price"] = prices["close"]
        bounds = windows.fold_boundaries(prices["date"].to_numpy(), 1)
        fold = windows.fold_windows(prices, bounds[0], bounds[1], lag=6, horizon=1)
        train, test = windows.window_starts(fold.train), windows.window_starts(fold.test)
        x, y = windows.gather_windows(fold, train)
        ridge = Ridge(alpha=1.0).fit(x.reshape(len(x), -1).astype(float), y.astype(float))
        coef, intercept = windows.fit_linear_window(fold, train, chunk=50)
        np.testing.assert_allclose(coef, ridge.coef_, rtol=1e-6, atol=1e-9)
        assert intercept == pytest.approx(ridge.intercept_, rel=1e-6, abs=1e-12)
        base = windows.baseline_forecasts(fold, prices["price"].to_numpy(), train=train, test=test)
        x_test = windows.gather_windows(fold, test)[0].reshape(len(test), -1).astype(float)
        np.testing.assert_allclose(base["linear_window"], ridge.predict(x_test), rtol=1e-6, atol=1e-9)
        ends = test + fold.lag - 1
        log_price = np.log(prices["price"].to_numpy())
        returns = np.stack([log_price[ends - i] - log_price[ends - i - 1] for i in range(fold.lag)], axis=1)
        np.testing.assert_allclose(base["moving_average"], returns.mean(axis=1), rtol=1e-9, atol=1e-15)
        assert len(base["persistence"]) == len(test) and not base["persistence"].any()


def symbols_of(fold: windows.FoldWindows, starts: np.ndarray) -> set[str]:
    return set(fold.symbols[np.searchsorted(fold.rows[:, 0], starts, side="right") - 1].tolist())


class TestValidationSplit:
    def test_validation_holds_the_latest_target_dates_of_all_symbols(self) -> None:
        prices = synthetic_prices(symbols=3, days=200, seed=5).assign(date=lambda t: pd.to_datetime(t["date"]))
        prices["price"] = prices["close"]
        dates = prices["date"].to_numpy()
        bounds = windows.fold_boundaries(dates, 2)
        fold = windows.fold_windows(prices, bounds[0], bounds[1], lag=10, horizon=2)
        train = windows.window_starts(fold.train)
        fit, val = windows.validation_split(fold, train, dates)
        fit_dates, val_dates = windows.target_dates(fold, fit, dates), windows.target_dates(fold, val, dates)
        assert sorted([*fit.tolist(), *val.tolist()]) == train.tolist()
        assert fit_dates.max() < val_dates.min() and val_dates.max() < bounds[0]
        assert 0.13 <= len(val) / len(train) <= 0.17
        assert symbols_of(fold, fit) == symbols_of(fold, val) == {"SYM0", "SYM1", "SYM2"}

    def test_scalers_fitted_before_validation_never_see_it(self) -> None:
        prices = synthetic_prices(symbols=2, days=200, seed=3).assign(date=lambda t: pd.to_datetime(t["date"]))
        prices["price"] = prices["close"]
        dates = prices["date"].to_numpy()
        bounds = windows.fold_boundaries(dates, 2)
        fold = windows.fold_windows(prices, bounds[0], bounds[1], lag=10)
        fit, val = windows.validation_split(fold, windows.window_starts(fold.train), dates)
        since = windows.target_dates(fold, val, dates).min()

        def fit_windows(frame: pd.DataFrame) -> tuple:
            rescaled = windows.fold_windows(frame, bounds[0], bounds[1], lag=10, scale_before=since)
            return rescaled.x[fit], rescaled.y[fit], rescaled.mean, rescaled.std

        changed = prices.copy()
        late = changed["date"] >= since
        changed.loc[late, "price"] *= np.random.default_rng(1).uniform(0.5, 2, late.sum())
        changed.loc[late, "volume"] = 1
        for before, after in zip(fit_windows(prices), fit_windows(changed), strict=True):
            np.testing.assert_array_equal(before, after)
        assert not np.array_equal(fold.mean, fit_windows(prices)[2])  # the default scales on all training rows

    def test_uneven_histories_and_one_date(self) -> None:
        prices = uneven_prices()
        dates = prices["date"].to_numpy()
        fold = windows.fold_windows(prices, np.datetime64("2024-03-15"), np.datetime64("2024-04-30"), lag=5)
        train = windows.window_starts(fold.train)
        for share, late in ((0.3, {"AAA", "BBB"}), (0.05, {"AAA"})):
            fit, val = windows.validation_split(fold, train, dates, share=share)
            assert windows.target_dates(fold, fit, dates).max() < windows.target_dates(fold, val, dates).min()
            assert symbols_of(fold, val) == late and symbols_of(fold, fit) == {"AAA", "BBB"}
        fit, val = windows.validation_split(fold, train[:1], dates)
        assert len(fit) == 0 and val.tolist() == train[:1].tolist()

    def test_walk_forward_fits_before_it_validates(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from tasks.market import forecaster, tasks
        from tasks.store import write_parquet

        prices = synthetic_prices(symbols=3, days=160, seed=6).assign(date=lambda t: pd.to_datetime(t["date"]))
        prices["price"] = prices["close"]
        seen = []

        def fake_train(model, train, val, **kwargs) -> dict:
            seen.append((train.starts, val.starts))
            return {"train_loss": [0.0], "val_loss": [0.0], "best_epoch": 1}

        monkeypatch.setattr(forecaster, "train_model", fake_train)
        uri = write_parquet(prices, tmp_path / "valid_prices.parquet")
        tasks.walk_forward.fn(uri, str(tmp_path), str(tmp_path / "models"), lag=8, folds=2, epochs=1)
        dates = prices["date"].to_numpy()
        bounds = windows.fold_boundaries(dates, 2)
        assert len(seen) == 2
        for (fit, val), split in zip(seen, bounds, strict=False):
            fit_dates, val_dates = dates[fit + 8], dates[val + 8]
            assert fit_dates.max() < val_dates.min() and val_dates.max() < split
            assert len(val) >= 0.13 * (len(fit) + len(val))


class TestWindows:
    def test_expanding_folds_cover_the_end(self) -> None:
        dates = pd.bdate_range("2024-01-01", periods=100).to_numpy()
        bounds = windows.fold_boundaries(dates, 3)
        assert len(bounds) == 4 and bounds[0] < bounds[1] < bounds[2] < bounds[3] and bounds[3] > dates[-1]

    def test_strategy_gain(self) -> None:
        out = windows.strategy_gain(np.array([0.01, -0.02, 0.03]), np.array([1.0, -1.0, 1.0]), cost=0.001)
        assert out["strategy_log_return"] == pytest.approx(0.04 - 0.003)
        assert out["buy_and_hold_log_return"] == pytest.approx(0.02) and out["trades"] == 3

    def test_a_horizon_of_h_holds_non_overlapping_periods(self) -> None:
        daily = np.array([0.01, 0.02, -0.03, 0.04, 0.01, -0.02])  # log returns of steps 1..6
        # a window ending at step t targets the 2-step return t+1..t+2; consecutive windows overlap by a step
        two_step = np.array([daily[0] + daily[1], daily[1] + daily[2], daily[2] + daily[3], daily[3] + daily[4],
                             daily[4] + daily[5]])
        out = windows.strategy_gain(two_step, np.ones(5), cost=0.0, horizon=2)
        # by hand: held periods are windows 0, 2, 4 = steps 1-2, 3-4, 5-6: each day once, as buy-and-hold is
        assert out["buy_and_hold_log_return"] == pytest.approx(daily.sum())
        assert out["strategy_log_return"] == pytest.approx(daily.sum()) and out["holding_periods"] == 3
        flat_then_long = windows.strategy_gain(two_step, np.array([-1.0, 9, 1.0, 9, 1.0]), cost=0.001, horizon=2)
        assert flat_then_long["strategy_log_return"] == pytest.approx(daily[2:].sum() - 0.001)
        assert flat_then_long["trades"] == 1

    def test_each_series_starts_flat_and_is_held_on_its_own(self) -> None:
        out = windows.strategy_gain(np.array([0.01, 0.02, 0.03, 0.04]), np.ones(4), cost=0.001, horizon=2,
                                    series=np.array([0, 0, 0, 1]))
        assert out["holding_periods"] == 3 and out["trades"] == 2
        assert out["strategy_log_return"] == pytest.approx(0.01 + 0.03 + 0.04 - 0.002)

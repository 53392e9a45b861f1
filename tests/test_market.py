"""Prices in every form they come in, row checks, leakage-free windows, folds and the trading metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.errors import BadInputError
from tasks.market import checks, sources, windows
from tasks.market.synthetic import synthetic_prices


def write(tmp_path: Path, text: str, name: str = "p.csv") -> str:
    (tmp_path / name).write_text(text)
    return str(tmp_path / name)


class TestReadPrices:
    def test_long_form_with_aliases_and_adj_close(self, tmp_path: Path) -> None:
        path = write(tmp_path, "Date,Ticker,Open,High,Low,Close,Adj Close,Volume\n"
                               "2024-01-02,AAA,1,2,0.5,1.5,1.4,100\n2024-01-03,AAA,1,2,0.5,1.6,1.5,100\n")
        prices, read = sources.read_prices(path)
        assert read["target"] == "adj_close" and read["adjusted_close"] and prices["price"].tolist() == [1.4, 1.5]
        assert prices["symbol"].unique().tolist() == ["AAA"]

    def test_wide_form_and_us_dates(self, tmp_path: Path) -> None:
        path = write(tmp_path, "date,AAA,BBB\n1/2/2024,10,20\n1/3/2024,11,21\n")
        prices, _ = sources.read_prices(path)
        assert sorted(prices["symbol"].unique()) == ["AAA", "BBB"]
        assert prices["date"].min() == pd.Timestamp("2024-01-02")

    def test_unnamed_index_date_column_and_symbol_option(self, tmp_path: Path) -> None:
        path = write(tmp_path, ",Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,2,0.5,1.6,10\n")
        prices, _ = sources.read_prices(path, symbol="GOOG")
        assert prices["symbol"].unique().tolist() == ["GOOG"] and prices["price"].tolist() == [1.5, 1.6]

    def test_unknown_target_lists_columns(self, tmp_path: Path) -> None:
        path = write(tmp_path, "date,close\n2024-01-02,1\n2024-01-03,2\n")
        with pytest.raises(BadInputError, match="target column 'vwap' not found; columns are: date, close"):
            sources.read_prices(path, target="vwap")

    def test_mixed_time_zones(self, tmp_path: Path) -> None:
        path = write(tmp_path, "date,close\n2024-01-02T00:00:00+00:00,1\n2024-01-03T00:00:00-05:00,2\n")
        with pytest.raises(BadInputError, match="mixed time zones"):
            sources.read_prices(path)

    def test_single_row(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="a single row"):
            sources.read_prices(write(tmp_path, "date,close\n2024-01-02,1\n"))

    @pytest.mark.parametrize("dates, first", [
        (["20240102", "20240103"], "2024-01-02"),
        (["1/2/2024", "1/3/2024"], "2024-01-02"),
        (["13/01/2024", "14/01/2024"], "2024-01-13"),
        (["02.01.2024", "15.01.2024"], "2024-01-02"),
        (["2015-01-01 23:00:23.723", "2015-01-02 07:07:35.156"], "2015-01-01"),
    ])
    def test_date_forms(self, tmp_path: Path, dates: list[str], first: str) -> None:
        path = write(tmp_path, "date,close\n" + "".join(f"{d},{i + 1}\n" for i, d in enumerate(dates)))
        prices, _ = sources.read_prices(path)
        assert str(prices["date"].iloc[0])[:10] == first and prices["date"].is_monotonic_increasing

    def test_date_column_found_by_its_content(self, tmp_path: Path) -> None:
        path = write(tmp_path, "when,ticker,close\n2024-01-02,A,1\n2024-01-03,A,2\n")
        prices, read = sources.read_prices(path)
        assert read["date_column"] == "when" and prices["date"].iloc[1] == pd.Timestamp("2024-01-03")

    def test_date_column_named_by_the_user(self, tmp_path: Path) -> None:
        path = write(tmp_path, "created,settled,close\n2024-01-02,2024-02-02,1\n2024-01-03,2024-02-05,2\n")
        prices, read = sources.read_prices(path, date_column="settled")
        assert read["date_column"] == "settled" and prices["date"].iloc[1] == pd.Timestamp("2024-02-05")
        with pytest.raises(BadInputError, match="date column 'booked' not found; columns are: created"):
            sources.read_prices(path, date_column="booked")

    def test_no_date_column_names_the_option(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="no date column; columns are: a, close; name it with --date-column"):
            sources.read_prices(write(tmp_path, "a,close\nx,1\ny,2\n"))

    def test_traded_value_stands_in_for_volume_and_none_is_fine(self, tmp_path: Path) -> None:
        prices, read = sources.read_prices(write(tmp_path, "date,close,turnover\n2024-01-02,1,500\n2024-01-03,2,7\n"))
        assert read["volume_column"] == "turnover" and read["volume_kind"] == "traded value"
        bars = "date_time,close,cum_vol,cum_dollar\n2015-01-01 23:00:23.723,1,5,9\n2015-01-02 07:07:35.156,2,6,9\n"
        _, read = sources.read_prices(write(tmp_path, bars))
        assert (read["date_column"], read["volume_column"], read["volume_kind"]) == ("date_time", "cum_vol", "volume")
        assert prices["volume"].tolist() == [500, 7]
        prices, read = sources.read_prices(write(tmp_path, "date,close\n2024-01-02,1\n2024-01-03,2\n"))
        assert read["volume_column"] is None and prices["volume"].isna().all()

    def test_empty_cells_of_a_wide_table_are_not_records(self, tmp_path: Path) -> None:
        prices, read = sources.read_prices(write(tmp_path, "date,A,B\n2024-01-02,1,\n2024-01-03,2,5\n"))
        assert len(prices) == 3 and read["empty_cells"] == 1 and read["layout"] == "wide"


class TestReadCheckedPrices:
    def test_the_windows_columns_as_pandas_reads_them(self, tmp_path: Path) -> None:
        prices = uneven_prices().assign(open=1.0, note="x")
        prices.to_parquet(tmp_path / "p.parquet", index=False, row_group_size=40)
        ours = sources.read_checked_prices(str(tmp_path / "p.parquet"))
        pd.testing.assert_frame_equal(ours, pd.read_parquet(tmp_path / "p.parquet", columns=sources.WINDOW_COLUMNS))
        assert ours["volume"].isna().sum() == 1


class TestChecks:
    def test_faulty_rows_are_quarantined_and_dates_sorted(self, tmp_path: Path) -> None:
        path = write(tmp_path, "date,symbol,open,high,low,close,volume\n"
                               "2024-01-04,A,1,2,1,1.5,1\n2024-01-02,A,1,2,1,1.5,1\n2024-01-03,A,1,2,1,abc,1\n"
                               "2024-01-05,A,1,2,1,-1,1\n2024-01-08,A,1,1,2,1.5,1\n2024-01-02,A,1,2,1,1.7,1\n"
                               "2024-01-09,A,1,2,1,,1\n")
        prices, _ = sources.read_prices(path)
        valid, quarantined, unsorted = checks.check_prices(prices)
        assert valid["date"].dt.strftime("%m-%d").tolist() == ["01-02", "01-04"]
        assert sorted(quarantined["reason"]) == sorted(["price is not a number: abc", "non-positive price",
                                                        "high below low", "duplicate (symbol, date)",
                                                        "missing price"])
        assert unsorted > 0 and len(valid) + len(quarantined) == len(prices)

    def test_profile_gaps_and_returns(self) -> None:
        valid = pd.DataFrame({"symbol": "A", "date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-12"]),
                              "price": [1.0, 2.0, 2.0]})
        row = checks.symbol_profile(valid, quarantined=0).iloc[0]
        assert row["max_gap_days"] == 8 and row["max_abs_return"] == pytest.approx(np.log(2))
        assert row["max_gap_after"] == "2024-01-02" and row["jump_share"] == pytest.approx(0.5)


def walk(symbol: str, days: int = 60, *, seed: int = 0, start: float = 100.0) -> pd.DataFrame:
    """A random walk of daily closes (1% a day) with a steady volume, as check_prices leaves it."""
    rng = np.random.default_rng(seed)
    price = start * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    return pd.DataFrame({"date": pd.bdate_range("2024-01-01", periods=days), "symbol": symbol, "open": price,
                         "high": price * 1.01, "low": price * 0.99, "close": price, "volume": 1e6, "split": np.nan,
                         "price": price})


def with_split(frame: pd.DataFrame, at: int, factor: float, *, volume: bool = True) -> pd.DataFrame:
    """The frame as an unadjusted source shows a ``factor``-for-1 split at row ``at``."""
    out = frame.copy()
    for col in ("open", "high", "low", "close", "price"):
        out.loc[at:, col] /= factor
    if volume:
        out.loc[at:, "volume"] *= factor
    return out


class TestSplits:
    def test_a_seven_for_one_jump_is_found_with_its_date_and_ratio(self) -> None:
        prices = with_split(walk("AAPL"), 30, 7.0)
        found = checks.find_splits(prices)
        assert len(found) == 1
        row = found.iloc[0]
        assert (row["symbol"], row["date"], row["split"], row["factor"]) == ("AAPL", prices["date"][30], "7:1", 7.0)
        assert row["ratio"] == pytest.approx(prices["price"][30] / prices["price"][29])
        assert row["source"] == "price jump" and row["in_prices"]

    @pytest.mark.parametrize("factor, label", [(2.0, "2:1"), (1.5, "3:2"), (0.1, "1:10"), (0.2, "1:5")])
    def test_forward_and_reverse_splits(self, factor: float, label: str) -> None:
        found = checks.find_splits(with_split(walk("X", seed=3), 20, factor))
        assert found["split"].tolist() == [label] and found["factor"].tolist() == [pytest.approx(factor)]

    def test_a_real_crash_is_not_a_split(self) -> None:
        prices = walk("X", seed=1)
        prices.loc[30:, ["open", "high", "low", "close", "price"]] *= 0.45  # -55%: no split ratio near it
        assert checks.find_splits(prices).empty

    def test_a_bad_tick_undone_the_next_day_is_not_a_split(self) -> None:
        prices = walk("X", seed=2)
        prices.loc[30, "price"] /= 2
        assert checks.find_splits(prices).empty

    def test_a_market_wide_halving_is_not_a_split(self) -> None:
        frames = [walk(s, seed=i) for i, s in enumerate("ABCD")]
        for f in frames:
            f.loc[30:, "price"] /= 2
        assert checks.find_splits(pd.concat(frames, ignore_index=True)).empty

    def test_an_adjusted_close_is_not_searched(self) -> None:
        assert checks.find_splits(with_split(walk("X"), 30, 2.0), adjusted=True).empty

    def test_a_split_column_says_whether_the_prices_hold_the_jump(self) -> None:
        raw = with_split(walk("X"), 30, 4.0)
        raw.loc[30, "split"] = 4.0
        adjusted = walk("X").assign(split=raw["split"])
        assert checks.find_splits(raw, adjusted=True)[["source", "in_prices"]].values.tolist() == [
            ["split column", True]]
        assert checks.find_splits(adjusted)[["source", "in_prices"]].values.tolist() == [["split column", False]]

    def test_adjust_restores_the_series_and_its_volume(self) -> None:
        original = walk("X")
        raw = with_split(original, 30, 7.0)
        fixed = checks.apply_splits(raw, checks.find_splits(raw), mode="adjust")
        np.testing.assert_allclose(fixed["price"] * 7, original["price"])
        np.testing.assert_allclose(fixed["volume"] / 7, original["volume"])

    def test_adjust_leaves_a_volume_that_was_already_adjusted(self) -> None:
        raw = with_split(walk("X"), 30, 7.0, volume=False)
        fixed = checks.apply_splits(raw, checks.find_splits(raw), mode="adjust")
        assert (fixed["volume"] == 1e6).all()

    def test_drop_makes_the_rows_before_a_series_of_their_own(self) -> None:
        raw = pd.concat([with_split(walk("X"), 30, 2.0), walk("Y", seed=5)], ignore_index=True)
        dropped = checks.apply_splits(raw, checks.find_splits(raw), mode="drop")
        before = f"X<{raw['date'][30].date()}"
        assert dropped["symbol"].value_counts().to_dict() == {before: 30, "X": 30, "Y": 60}
        assert dropped.equals(dropped.sort_values(["symbol", "date"], kind="stable"))
        assert checks.apply_splits(raw, checks.find_splits(raw), mode="keep").equals(raw)


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


def uneven_prices() -> pd.DataFrame:
    """Three symbols of 60, 33 and 3 rows with gaps in the dates, a missing volume and integer-valued volumes;
    the third symbol starts after the split."""
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2024-01-01", periods=80)
    frames = []
    for symbol, rows in (("AAA", np.r_[0:40, 45:65]), ("BBB", np.r_[10:43]), ("CCC", np.r_[70:73])):
        price = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, len(rows))))
        volume = rng.integers(1_000, 100_000, len(rows)).astype(float)
        frames.append(pd.DataFrame({"date": days[rows], "symbol": symbol, "price": price, "volume": volume}))
    prices = pd.concat(frames, ignore_index=True)
    prices.loc[5, "volume"] = np.nan
    return prices


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


class TestWindowDataset:
    def test_loader_batches_are_gathered_from_the_view(self) -> None:
        from models.train import batches as loader
        from tasks.market.forecaster import WindowDataset

        prices = uneven_prices()
        fold = windows.fold_windows(prices, np.datetime64("2024-02-12"), np.datetime64("2024-03-15"), lag=5)
        starts = windows.window_starts(fold.train)
        x, y = windows.gather_windows(fold, starts)
        batches = list(loader(WindowDataset(fold, starts, target_scale=2.0), 8))
        assert len(batches) == -(-len(starts) // 8)
        np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in batches]), x)
        np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y / np.float32(2.0))


class TestMarketSpec:
    def test_a_champion_is_scored_with_its_own_scalers(self) -> None:
        from models.card import Architecture, ModelCard
        from tasks.market.forecaster import MarketSettings, MarketSpec

        def card(scalers: dict, horizon: int = 1) -> ModelCard:
            return ModelCard(architecture=Architecture(name="LSTMForecaster"), scalers=scalers,
                             parameters={"lag": 5, "horizon": horizon})

        prices = synthetic_prices(symbols=2, days=160).assign(date=lambda f: pd.to_datetime(f["date"]))
        prices = prices.rename(columns={"close": "price"})[["date", "symbol", "price", "volume"]]
        spec = MarketSpec(prices, MarketSettings(lag=5, horizon=1, folds=2, epochs=1, hidden=4, cost=0.0, seed=0,
                                                 mc_samples=0))
        fold, units = spec.last.fold, np.flatnonzero(spec.split == 1)
        own = {str(n): (m.tolist(), s.tolist()) for n, m, s in zip(fold.symbols, fold.mean, fold.std, strict=True)}
        np.testing.assert_allclose(spec.inputs(card(own), units), fold.x[spec.starts[units]], atol=1e-5)
        other = {n: ([m + 1.0 for m in mean], [2.0 * s for s in std]) for n, (mean, std) in own.items()}
        mean, std = fold.mean[spec.symbol[units]][:, None], fold.std[spec.symbol[units]][:, None]
        raw = fold.x[spec.starts[units]] * std + mean
        expected = (raw - (mean + 1.0)) / (2.0 * std)
        np.testing.assert_allclose(spec.inputs(card(other), units), expected, rtol=1e-4, atol=1e-5)
        assert spec.compatible(card(own))
        assert not spec.compatible(card(own, horizon=2))
        assert not spec.compatible(card({"SYM0": own["SYM0"]}))
        val_dates = windows.target_dates(fold, spec.starts[units], spec.dates)
        test_dates = windows.target_dates(fold, spec.starts[spec.split == 2], spec.dates)
        assert val_dates.max() < spec.last.start <= test_dates.min()  # validation precedes the test period


class TestShrinkOnValidation:
    def test_a_forecast_without_signal_is_shrunk_to_no_change_and_a_good_one_kept(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(0)
        actual = rng.normal(0, 0.01, 500)
        assert shrink_on_validation(actual, rng.normal(0, 0.01, 500)) == 0.0
        assert shrink_on_validation(actual, actual) == 1.0
        assert shrink_on_validation(actual, 2 * actual) == 0.5

    def test_a_gain_on_validation_within_the_noise_keeps_no_change(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(1)
        actual = rng.normal(0, 0.01, 250)
        faint = rng.normal(0, 0.01, 250) + 0.1 * actual  # a quarter of it lowers the validation error, by too little
        assert np.mean((actual - 0.25 * faint) ** 2) < np.mean(actual**2)
        assert shrink_on_validation(actual, faint) == 0.0
        assert shrink_on_validation(actual, 0.5 * actual + rng.normal(0, 0.002, 250)) > 0.0

    def test_symbols_moving_together_on_a_day_count_as_one_piece_of_evidence(self) -> None:
        from tasks.market.forecaster import shrink_on_validation

        rng = np.random.default_rng(1)
        day = rng.normal(0, 0.01, 40)  # five symbols with the same return each day
        forecast = rng.normal(0, 0.01, 40) + 0.15 * day
        actual, forecast = np.repeat(day, 5), np.repeat(forecast, 5) + rng.normal(0, 1e-4, 200)
        assert shrink_on_validation(actual, forecast) == 0.25  # 200 windows seem to show a gain
        assert shrink_on_validation(actual, forecast, np.repeat(np.arange(40), 5)) == 0.0  # 40 days do not

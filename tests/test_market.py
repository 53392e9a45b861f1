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
        prices, target = sources.read_prices(path)
        assert target == "adj_close" and prices["price"].tolist() == [1.4, 1.5]
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


class TestWindows:
    def test_windows_are_views_with_the_next_return_as_target(self) -> None:
        scaled = np.arange(20, dtype=float).reshape(10, 2)
        log_prices = np.log(np.arange(1, 11, dtype=float))
        x, y, end = windows.make_windows(scaled, log_prices, lag=3, horizon=1)
        assert x.shape == (7, 3, 2) and np.shares_memory(x, scaled)
        assert x[0].tolist() == [[0, 1], [2, 3], [4, 5]]
        assert y[0] == pytest.approx(np.log(4) - np.log(3)) and end.tolist() == list(range(2, 9))

    def test_no_leakage_changing_anything_after_the_split(self) -> None:
        prices = synthetic_prices(symbols=1, days=200, seed=1)
        prices["date"] = pd.to_datetime(prices["date"])
        prices["price"] = prices["close"]
        bounds = windows.fold_boundaries(prices["date"].to_numpy(), 2)
        before = windows.symbol_fold(prices, bounds[0], bounds[1], lag=10, horizon=1)
        changed = prices.copy()
        after_split = changed["date"] >= bounds[0]
        changed.loc[after_split, "price"] *= np.random.default_rng(0).uniform(0.5, 2, after_split.sum())
        changed.loc[after_split, "volume"] = 1
        after = windows.symbol_fold(changed, bounds[0], bounds[1], lag=10, horizon=1)
        np.testing.assert_array_equal(before["x_train"], after["x_train"])
        np.testing.assert_array_equal(before["y_train"], after["y_train"])
        assert before["scaler"] == after["scaler"]
        assert not np.array_equal(before["y_test"], after["y_test"])

    def test_expanding_folds_cover_the_end(self) -> None:
        dates = pd.bdate_range("2024-01-01", periods=100).to_numpy()
        bounds = windows.fold_boundaries(dates, 3)
        assert len(bounds) == 4 and bounds[0] < bounds[1] < bounds[2] < bounds[3] and bounds[3] > dates[-1]

    def test_strategy_gain(self) -> None:
        out = windows.strategy_gain(np.array([0.01, -0.02, 0.03]), np.array([1.0, -1.0, 1.0]), cost=0.001)
        assert out["strategy_log_return"] == pytest.approx(0.04 - 0.003)
        assert out["buy_and_hold_log_return"] == pytest.approx(0.02) and out["trades"] == 3

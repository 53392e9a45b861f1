"""Row checks and stock splits found in unadjusted prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.market import checks, sources
from tests.conftest import write_text


class TestChecks:
    def test_faulty_rows_are_quarantined_and_dates_sorted(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "date,symbol,open,high,low,close,volume\n"
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

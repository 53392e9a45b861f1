"""Prices in every form they come in: long or wide, CSV or Parquet, aliases, dates and units."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.errors import BadInputError
from tasks.market import sources
from tests.conftest import uneven_prices, write_text


class TestReadPrices:
    def test_long_form_with_aliases_and_adj_close(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "Date,Ticker,Open,High,Low,Close,Adj Close,Volume\n"
                               "2024-01-02,AAA,1,2,0.5,1.5,1.4,100\n2024-01-03,AAA,1,2,0.5,1.6,1.5,100\n")
        prices, read = sources.read_prices(path)
        assert read["target"] == "adj_close" and read["adjusted_close"] and prices["price"].tolist() == [1.4, 1.5]
        assert prices["symbol"].unique().tolist() == ["AAA"]

    def test_wide_form_and_us_dates(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "date,AAA,BBB\n1/2/2024,10,20\n1/3/2024,11,21\n")
        prices, _ = sources.read_prices(path)
        assert sorted(prices["symbol"].unique()) == ["AAA", "BBB"]
        assert prices["date"].min() == pd.Timestamp("2024-01-02")

    def test_unnamed_index_date_column_and_symbol_option(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, ",Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1.5,10\n"
                                    "2024-01-03,1,2,0.5,1.6,10\n")
        prices, _ = sources.read_prices(path, symbol="GOOG")
        assert prices["symbol"].unique().tolist() == ["GOOG"] and prices["price"].tolist() == [1.5, 1.6]

    def test_unknown_target_lists_columns(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "date,close\n2024-01-02,1\n2024-01-03,2\n")
        with pytest.raises(BadInputError, match="target column 'vwap' not found; columns are: date, close"):
            sources.read_prices(path, target="vwap")

    def test_mixed_time_zones(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "date,close\n2024-01-02T00:00:00+00:00,1\n2024-01-03T00:00:00-05:00,2\n")
        with pytest.raises(BadInputError, match="mixed time zones"):
            sources.read_prices(path)

    def test_single_row(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="a single row"):
            sources.read_prices(write_text(tmp_path, "date,close\n2024-01-02,1\n"))

    @pytest.mark.parametrize("dates, first", [
        (["20240102", "20240103"], "2024-01-02"),
        (["1/2/2024", "1/3/2024"], "2024-01-02"),
        (["13/01/2024", "14/01/2024"], "2024-01-13"),
        (["02.01.2024", "15.01.2024"], "2024-01-02"),
        (["2015-01-01 23:00:23.723", "2015-01-02 07:07:35.156"], "2015-01-01"),
    ])
    def test_date_forms(self, tmp_path: Path, dates: list[str], first: str) -> None:
        path = write_text(tmp_path, "date,close\n" + "".join(f"{d},{i + 1}\n" for i, d in enumerate(dates)))
        prices, _ = sources.read_prices(path)
        assert str(prices["date"].iloc[0])[:10] == first and prices["date"].is_monotonic_increasing

    def test_date_column_found_by_its_content(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "when,ticker,close\n2024-01-02,A,1\n2024-01-03,A,2\n")
        prices, read = sources.read_prices(path)
        assert read["date_column"] == "when" and prices["date"].iloc[1] == pd.Timestamp("2024-01-03")

    def test_date_column_named_by_the_user(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "created,settled,close\n2024-01-02,2024-02-02,1\n2024-01-03,2024-02-05,2\n")
        prices, read = sources.read_prices(path, date_column="settled")
        assert read["date_column"] == "settled" and prices["date"].iloc[1] == pd.Timestamp("2024-02-05")
        with pytest.raises(BadInputError, match="date column 'booked' not found; columns are: created"):
            sources.read_prices(path, date_column="booked")

    def test_no_date_column_names_the_option(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="no date column; columns are: a, close; name it with --date-column"):
            sources.read_prices(write_text(tmp_path, "a,close\nx,1\ny,2\n"))

    def test_traded_value_stands_in_for_volume_and_none_is_fine(self, tmp_path: Path) -> None:
        path = write_text(tmp_path, "date,close,turnover\n2024-01-02,1,500\n2024-01-03,2,7\n")
        prices, read = sources.read_prices(path)
        assert read["volume_column"] == "turnover" and read["volume_kind"] == "traded value"
        bars = "date_time,close,cum_vol,cum_dollar\n2015-01-01 23:00:23.723,1,5,9\n2015-01-02 07:07:35.156,2,6,9\n"
        _, read = sources.read_prices(write_text(tmp_path, bars))
        assert (read["date_column"], read["volume_column"], read["volume_kind"]) == ("date_time", "cum_vol", "volume")
        assert prices["volume"].tolist() == [500, 7]
        prices, read = sources.read_prices(write_text(tmp_path, "date,close\n2024-01-02,1\n2024-01-03,2\n"))
        assert read["volume_column"] is None and prices["volume"].isna().all()

    def test_empty_cells_of_a_wide_table_are_not_records(self, tmp_path: Path) -> None:
        prices, read = sources.read_prices(write_text(tmp_path, "date,A,B\n2024-01-02,1,\n2024-01-03,2,5\n"))
        assert len(prices) == 3 and read["empty_cells"] == 1 and read["layout"] == "wide"


class TestReadCheckedPrices:
    def test_the_windows_columns_as_pandas_reads_them(self, tmp_path: Path) -> None:
        prices = uneven_prices().assign(open=1.0, note="x")
        prices.to_parquet(tmp_path / "p.parquet", index=False, row_group_size=40)
        ours = sources.read_checked_prices(str(tmp_path / "p.parquet"))
        pd.testing.assert_frame_equal(ours, pd.read_parquet(tmp_path / "p.parquet", columns=sources.WINDOW_COLUMNS))
        assert ours["volume"].isna().sum() == 1

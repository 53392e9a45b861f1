"""Readers at the edge: OHLCV prices in long or wide form, CSV or Parquet, to one long table; the checked table
as the windows read it.

Column names are matched without case and with common aliases (Date, Ticker, Adj Close, cum_vol); the date
column is found by name, else by its content, or named by the user; dates may be ISO (with times), YYYYMMDD,
M/D/YYYY or D/M/YYYY; a traded value stands in for a missing volume; a single series takes its symbol from
``symbol`` (default: the file name).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from tasks.errors import BadInputError
from tasks.store import read_parquet

ALIASES = {
    "date": ("date", "datetime", "date_time", "timestamp", "time", "day", "trade_date", "unnamed: 0", ""),
    "symbol": ("symbol", "ticker", "name", "asset", "instrument"),
    "open": ("open",), "high": ("high",), "low": ("low",), "close": ("close", "price", "last"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted close", "adjusted_close"),
    "volume": ("volume", "vol", "cum_vol", "shares", "share_volume"),
    "split": ("split", "split_ratio", "split_factor", "stock splits", "stock_splits"),
}
# A traded value stands in for volume when there is none: its log is scaled per symbol like volume's.
VALUE_ALIASES = ("value", "traded_value", "turnover", "dollar_volume", "cum_dollar", "amount", "notional")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
WINDOW_COLUMNS = ["date", "symbol", "price", "volume"]
READ_BATCH_ROWS = 1 << 16
_TZ = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_COMPACT = re.compile(r"^(1[89]|2\d)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$")
_DAY_MONTH = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:[ T].*)?$")


def _canonical(columns: list[str]) -> dict[str, str]:
    """Original column name to canonical name, for the columns that have one."""
    found = {}
    for col in columns:
        key = str(col).strip().lower()
        for canonical, names in ALIASES.items():
            if key in names and canonical not in found.values():
                found[col] = canonical
                break
    return found


def date_format(text: pd.Series) -> str | None:
    """The strptime format of date strings that pandas would not read unambiguously, or None for ISO-like text:
    compact integers (20140609), M/D/YYYY, or D/M/YYYY when a first field exceeds 12 (also with . or -)."""
    sample = text.dropna().astype(str).str.strip()
    if sample.empty:
        return None
    if sample.str.fullmatch(_COMPACT).all():
        return "%Y%m%d"
    parts = sample.str.extract(_DAY_MONTH)
    if parts[0].notna().all():
        sep = parts[1].iloc[0]
        has_time = sample.str.contains(r"[ T]\d").any()
        first, second = parts[0].astype(int), parts[2].astype(int)
        day_first = bool((first > 12).any()) and bool((second <= 12).all())
        fmt = f"%d{sep}%m{sep}%Y" if day_first else f"%m{sep}%d{sep}%Y"
        return fmt + " %H:%M:%S" if has_time else fmt
    return None


def parse_dates(values: pd.Series, *, where: str) -> pd.Series:
    """Dates as naive timestamps; one time zone is converted away, mixed zones are an error. ISO dates and times,
    compact integers (20140609), M/D/YYYY and D/M/YYYY (when a day above 12 shows which it is)."""
    text = values.astype(str).str.strip()
    zones = text.str.extract(_TZ)[0]
    if zones.notna().any():
        distinct = set(zones.dropna())
        if zones.isna().any() or len(distinct) > 1:
            raise BadInputError(f"{where}: dates carry mixed time zones ({', '.join(sorted(distinct))}"
                                f"{' and none' if zones.isna().any() else ''}); convert them to one zone")
    fmt = date_format(text)
    try:
        parsed = pd.to_datetime(text, format=fmt, utc=zones.notna().any())
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{where}: dates cannot be parsed ({exc}); use ISO (2024-01-31), M/D/YYYY or "
                            "YYYYMMDD, or name the date column with --date-column") from exc
    return parsed.dt.tz_localize(None) if parsed.dt.tz is not None else parsed


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.dropna().astype(str).str.strip().head(200)
    if sample.empty or sample.str.fullmatch(r"-?\d+(\.\d+)?").all() and date_format(sample) is None:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format" on text that is no date
            parsed = pd.to_datetime(sample, format=date_format(sample), errors="coerce", utc=True)
    except (ValueError, TypeError):
        return False
    return bool(parsed.notna().mean() >= 0.95 and parsed.dt.year.between(1800, 2200).all())


def _date_column(raw: pd.DataFrame, names: dict[str, str], date_column: str | None, where: str) -> str:
    """The date column: ``date_column`` if given, else one named like a date, else the first whose values read
    as dates."""
    if date_column:
        if date_column not in raw.columns:
            raise BadInputError(f"{where}: date column {date_column!r} not found; columns are: "
                                f"{', '.join(raw.columns)}")
        return date_column
    named = [c for c, canonical in names.items() if canonical == "date"]
    if named:
        return named[0]
    for col in raw.columns:
        if names.get(col) not in PRICE_COLUMNS and _looks_like_dates(raw[col]):
            return col
    raise BadInputError(f"{where}: no date column; columns are: {', '.join(raw.columns)}; name it with --date-column")


def _volume_column(table: pd.DataFrame, volume_column: str | None, where: str) -> tuple[str | None, str | None]:
    """(column, kind): the volume column, or a traded value in its place, or none."""
    if volume_column:
        if volume_column not in table.columns:
            raise BadInputError(f"{where}: volume column {volume_column!r} not found; columns are: "
                                f"{', '.join(table.columns)}")
        return volume_column, "volume"
    if "volume" in table.columns:
        return "volume", "volume"
    value = [c for c in table.columns if str(c).strip().lower() in VALUE_ALIASES]
    return (value[0], "traded value") if value else (None, None)


def read_prices(path: str, *, symbol: str | None = None, target: str | None = None,
                date_column: str | None = None, volume_column: str | None = None) -> tuple[pd.DataFrame, dict]:
    """A long table ``date, symbol, open, high, low, close, volume, split, price`` and how the file was read:
    ``{"target", "target_column", "adjusted_close", "date_column", "date_format", "volume_column", "volume_kind",
    "layout", "empty_cells"}`` (column names as the file has them).

    ``price`` is the target: ``target`` if given, else adjusted close if present, else close. ``volume`` is the
    volume column, else a traded value (``value``, ``turnover``, ``cum_dollar`` ...), else missing; ``split`` the
    split factor column (new shares per old, e.g. 7.0) when there is one.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{path}: no such file; pass --input a CSV or Parquet file of prices")
    if p.stat().st_size == 0:
        raise BadInputError(f"{path}: empty file; pass a CSV or Parquet file of prices")
    try:
        raw = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p, dtype=str)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BadInputError(f"{path}: cannot be read as CSV or Parquet ({str(exc).splitlines()[0]})") from exc
    raw.columns = [str(c) for c in raw.columns]
    names = _canonical(list(raw.columns))
    date_col = _date_column(raw, names, date_column, path)
    names = {c: n for c, n in names.items() if n != "date" and c != date_col}
    table = raw.rename(columns={**names, date_col: "date"})
    wide = not (set(PRICE_COLUMNS) & set(table.columns))
    empty_cells = 0
    if wide:
        value_columns = [c for c in table.columns if c != "date"]
        table = table.melt(id_vars=["date"], value_vars=value_columns, var_name="symbol", value_name="close")
        blank = table["close"].isna() | (table["close"].astype(str).str.strip() == "")
        empty_cells, table = int(blank.sum()), table.loc[~blank].reset_index(drop=True)
    if "symbol" not in table.columns:
        table["symbol"] = symbol or p.name.split(".")[0]
    wanted = target.strip().lower() if target else None
    if wanted:
        match = [c for c in table.columns if c.lower() == wanted or c == _canonical([target]).get(target)]
        if not match:
            raise BadInputError(f"{path}: target column {target!r} not found; columns are: {', '.join(raw.columns)}")
        target_col = match[0]
    else:
        target_col = "adj_close" if "adj_close" in table.columns else "close"
    if target_col not in table.columns:
        raise BadInputError(f"{path}: no close price column; columns are: {', '.join(raw.columns)}; pass --target")
    volume_col, volume_kind = _volume_column(table, volume_column, path)
    out = pd.DataFrame({"date": parse_dates(table["date"], where=str(path)), "symbol": table["symbol"].astype(str)})
    for col in ("open", "high", "low", "close"):
        out[col] = pd.to_numeric(table[col], errors="coerce") if col in table.columns else float("nan")
    out["volume"] = pd.to_numeric(table[volume_col], errors="coerce") if volume_col else float("nan")
    out["split"] = pd.to_numeric(table["split"], errors="coerce") if "split" in table.columns else float("nan")
    out["price"] = pd.to_numeric(table[target_col], errors="coerce")
    out["price_text"] = table[target_col].map(lambda v: "" if pd.isna(v) else str(v)).astype(object)
    if len(out) < 2:
        raise BadInputError(f"{path}: a single row of prices; a forecaster needs a history per symbol")
    original = {canonical: col for col, canonical in names.items()}
    read = {"target": target_col, "target_column": original.get(target_col, target_col),
            "adjusted_close": target_col == "adj_close", "date_column": date_col,
            "date_format": date_format(table["date"]) or "ISO",
            "volume_column": original.get(volume_col, volume_col) if volume_col else None,
            "volume_kind": volume_kind, "layout": "wide" if wide else "long", "empty_cells": empty_cells}
    return out, read


def read_checked_prices(uri: str) -> pd.DataFrame:
    """The checked prices as the windows use them: only ``date, symbol, price, volume``, read in batches straight
    into the frame's arrays, so reading peaks near the frame's own size (``pd.read_parquet``: ~3x)."""
    return read_parquet(uri, columns=WINDOW_COLUMNS, batch_rows=READ_BATCH_ROWS)

"""Readers at the edge: OHLCV prices in long or wide form, CSV or Parquet, to one long table; the checked table
as the windows read it.

Column names are matched without case and with common aliases (Date, Ticker, Adj Close); dates may be ISO or
M/D/YYYY, in a column of their own or an unnamed index column; a single series takes its symbol from
``symbol`` (default: the file name).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from tasks.errors import BadInputError
from tasks.store import read_parquet

ALIASES = {
    "date": ("date", "datetime", "timestamp", "time", "day", "unnamed: 0", ""),
    "symbol": ("symbol", "ticker", "name", "asset", "instrument"),
    "open": ("open",), "high": ("high",), "low": ("low",), "close": ("close", "price", "last"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted close", "adjusted_close"),
    "volume": ("volume", "vol"),
}
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
WINDOW_COLUMNS = ["date", "symbol", "price", "volume"]
READ_BATCH_ROWS = 1 << 16
_TZ = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


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


def parse_dates(values: pd.Series, *, where: str) -> pd.Series:
    """Dates as naive timestamps; one time zone is converted away, mixed zones are an error."""
    text = values.astype(str).str.strip()
    zones = text.str.extract(_TZ)[0]
    if zones.notna().any():
        distinct = set(zones.dropna())
        if zones.isna().any() or len(distinct) > 1:
            raise BadInputError(f"{where}: dates carry mixed time zones ({', '.join(sorted(distinct))}"
                                f"{' and none' if zones.isna().any() else ''}); convert them to one zone")
    fmt = "%m/%d/%Y" if text.str.match(r"^\d{1,2}/\d{1,2}/\d{4}$").all() else None
    try:
        parsed = pd.to_datetime(text, format=fmt, utc=zones.notna().any())
    except (ValueError, TypeError) as exc:
        raise BadInputError(f"{where}: dates cannot be parsed ({exc}); use ISO (2024-01-31) or M/D/YYYY") from exc
    return parsed.dt.tz_localize(None) if parsed.dt.tz is not None else parsed


def read_prices(path: str, *, symbol: str | None = None, target: str | None = None) -> tuple[pd.DataFrame, str]:
    """A long table ``date, symbol, open, high, low, close, volume, price`` and the name of the target column.

    ``price`` is the target: ``target`` if given, else adjusted close if present, else close.
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
    if "date" not in names.values():
        raise BadInputError(f"{path}: no date column; columns are: {', '.join(raw.columns)}")
    table = raw.rename(columns=names)
    date_col = "date"
    if not (set(PRICE_COLUMNS) & set(table.columns)):
        value_columns = [c for c in table.columns if c != date_col]
        table = table.melt(id_vars=[date_col], value_vars=value_columns, var_name="symbol", value_name="close")
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
    out = pd.DataFrame({"date": parse_dates(table[date_col], where=str(path)), "symbol": table["symbol"].astype(str)})
    for col in ("open", "high", "low", "close", "volume"):
        out[col] = pd.to_numeric(table[col], errors="coerce") if col in table.columns else float("nan")
    out["price"] = pd.to_numeric(table[target_col], errors="coerce")
    out["price_text"] = table[target_col].map(lambda v: "" if pd.isna(v) else str(v)).astype(object)
    if len(out) < 2:
        raise BadInputError(f"{path}: a single row of prices; a forecaster needs a history per symbol")
    return out, target_col


def read_checked_prices(uri: str) -> pd.DataFrame:
    """The checked prices as the windows use them: only ``date, symbol, price, volume``, read in batches straight
    into the frame's arrays, so reading peaks near the frame's own size (``pd.read_parquet``: ~3x)."""
    return read_parquet(uri, columns=WINDOW_COLUMNS, batch_rows=READ_BATCH_ROWS)

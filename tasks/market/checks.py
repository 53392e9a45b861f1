"""Row-level checks on prices and the per-symbol profile the prices gate validates."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_prices(prices: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Sort by symbol and date; (valid, quarantined, rows that were out of order).

    Quarantined: missing or non-numeric price, non-positive prices, high below low, duplicate (symbol, date)
    (the first is kept).
    """
    order = prices.sort_values(["symbol", "date"], kind="stable")
    unsorted = int((order.index.to_numpy() != np.sort(order.index.to_numpy())).sum())
    table = order.reset_index(drop=True)
    reasons = pd.Series(None, index=table.index, dtype=object)
    positive = table[["open", "high", "low", "close", "price"]]
    rules = [
        (table["price"].isna() & (table["price_text"].str.strip() == ""), "missing price"),
        (table["price"].isna(), "price is not a number: " + table["price_text"].str.slice(0, 20)),
        ((positive <= 0).any(axis=1), "non-positive price"),
        (table["high"] < table["low"], "high below low"),
        (table.duplicated(["symbol", "date"], keep="first"), "duplicate (symbol, date)"),
    ]
    for mask, reason in rules:
        fill = mask & reasons.isna()
        reasons[fill] = reason[fill] if isinstance(reason, pd.Series) else reason
    bad = reasons.notna()
    quarantined = table.loc[bad, ["symbol", "date"]].assign(reason=reasons[bad])
    return table.loc[~bad].drop(columns="price_text").reset_index(drop=True), quarantined, unsorted


def symbol_profile(valid: pd.DataFrame, *, quarantined: int) -> pd.DataFrame:
    """A row per symbol: rows, dates strictly increasing, the longest gap in business days, the largest
    absolute daily log return; plus the share of rows quarantined."""
    rows = []
    total = len(valid) + quarantined
    for symbol, group in valid.groupby("symbol", sort=True):
        dates = group["date"].to_numpy()
        gaps = np.busday_count(dates[:-1].astype("datetime64[D]"), dates[1:].astype("datetime64[D]")) \
            if len(dates) > 1 else np.array([0])
        returns = np.diff(np.log(group["price"].to_numpy()))
        increasing = bool((np.diff(dates) > np.timedelta64(0)).all())
        rows.append({"symbol": symbol, "rows": len(group), "dates_increasing": increasing,
                     "max_gap_days": int(gaps.max()) if gaps.size else 0,
                     "max_abs_return": float(np.abs(returns).max()) if returns.size else 0.0,
                     "quarantined_share": quarantined / max(total, 1)})
    return pd.DataFrame(rows)

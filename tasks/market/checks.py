"""Row-level checks on prices, stock splits left in the prices, and the per-symbol profile the prices gate
validates."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Splits as new shares per old share (a reverse split is the inverse): the price after is 1/factor of the price before.
SPLIT_FACTORS = (1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 15.0, 20.0, 25.0, 30.0, 50.0, 100.0)
SPLIT_TOLERANCE = 0.04  # |log(observed ratio / split ratio)|: the day's own move on top of the split
MARKET_MOVE = 0.10  # a median |log return| of the other symbols above this is a market-wide move, not a split
JUMP = 0.4  # |log return| of a jump: about -33% or +49% in a step
EXTREME_RETURN = 0.5
PRE_SPLIT = "<"  # --splits drop: the rows before a split become the series "<symbol><<split date>"


def check_prices(prices: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Sort by symbol and date; (valid, quarantined, rows dated before an earlier row of their symbol).

    Quarantined: missing or non-numeric price, non-positive prices, high below low, duplicate (symbol, date)
    (the first is kept).
    """
    unsorted = int(prices["date"].lt(prices.groupby("symbol", sort=False)["date"].cummax()).sum())
    table = prices.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
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


def _split_label(factor: float) -> str:
    """7.0 -> "7:1", 0.1 -> "1:10", 1.5 -> "3:2"."""
    big = max(factor, 1 / factor)
    num, den = (big, 1) if float(big).is_integer() else (big * 2, 2)
    num, den = (round(num), den) if factor >= 1 else (den, round(num))
    return f"{num}:{den}"


def find_splits(prices: pd.DataFrame, *, adjusted: bool = False) -> pd.DataFrame:
    """Stock splits left in the prices: one row per (symbol, date) with ``factor`` (new shares per old),
    ``ratio`` (price after / before as observed), ``split`` ("7:1"), ``source`` and ``in_prices`` (whether the
    jump is in the target prices, so they need adjusting).

    Two sources: a split column (``split``: 7.0 on the day of a 7-for-1 split; the prices may or may not have
    been adjusted for it, which the observed ratio tells); and, when the target is not an adjusted close, a
    close-to-close ratio within ``SPLIT_TOLERANCE`` of a split ratio (1/2, 1/3, 2/3, 2, 10 ...) that is not a
    market-wide move (the other symbols' median move that day is small) and does not undo or get undone by the
    next step (a bad tick). ``prices`` is sorted by symbol then date.
    """
    symbol = prices["symbol"].to_numpy()
    log_price = np.log(prices["price"].to_numpy(dtype=float))
    same = np.r_[False, symbol[1:] == symbol[:-1]]
    step = np.where(same, np.r_[np.nan, np.diff(log_price)], np.nan)
    after, before = np.r_[step[1:], np.nan], np.r_[np.nan, step[:-1]]
    rows = []
    listed = prices["split"].to_numpy(dtype=float) if "split" in prices else np.full(len(prices), np.nan)
    for i in np.flatnonzero(np.isfinite(listed) & (listed > 0) & (listed != 1) & same):
        expected = -np.log(listed[i])
        rows.append({"index": int(i), "factor": float(listed[i]), "source": "split column",
                     "in_prices": bool(abs(step[i] - expected) <= 0.1)})
    if not adjusted:
        market = _median_other_move(prices["date"].to_numpy(), symbol, step)
        candidates = np.log(np.asarray(SPLIT_FACTORS))
        for i in np.flatnonzero(np.abs(np.nan_to_num(step)) >= np.log(1.45)):
            distance = np.abs(np.abs(step[i]) - candidates)
            nearest = int(distance.argmin())
            undone = any(np.isfinite(other) and abs(step[i] + other) < 0.1 for other in (after[i], before[i]))
            if distance[nearest] > SPLIT_TOLERANCE or undone or abs(np.nan_to_num(market[i])) > MARKET_MOVE:
                continue
            if any(r["index"] == i for r in rows):
                continue
            factor = SPLIT_FACTORS[nearest] if step[i] < 0 else 1 / SPLIT_FACTORS[nearest]
            rows.append({"index": int(i), "factor": float(factor), "source": "price jump", "in_prices": True})
    columns = ["symbol", "date", "factor", "split", "ratio", "source", "in_prices", "index"]
    if not rows:
        return pd.DataFrame(columns=columns)
    found = pd.DataFrame(rows).sort_values("index")
    idx = found["index"].to_numpy()
    return found.assign(symbol=symbol[idx], date=prices["date"].to_numpy()[idx],
                        split=[_split_label(f) for f in found["factor"]],
                        ratio=np.exp(step[idx]))[columns].reset_index(drop=True)


def _median_other_move(dates: np.ndarray, symbol: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Per row, the median log return of the other symbols on its date (NaN with fewer than two others)."""
    frame = pd.DataFrame({"date": dates, "symbol": symbol, "step": step})
    by_date = frame.groupby("date")["step"]
    count, total = by_date.transform("count"), by_date.transform("median")
    # The median over all symbols stands in for the median over the others: one symbol moves it little.
    return np.where(count >= 3, total, np.nan)


def apply_splits(prices: pd.DataFrame, splits: pd.DataFrame, *, mode: str = "adjust") -> pd.DataFrame:
    """The prices with the splits in them dealt with. ``adjust``: prices before a split are divided by its
    factor (volume multiplied, when the volume shows the jump too), as an adjusted close would be. ``drop``: the
    rows before a split become a series of their own (``AAPL<2014-06-09``), so no window spans the jump.
    ``keep``: unchanged. The result stays sorted by symbol then date."""
    todo = splits[splits["in_prices"]] if len(splits) else splits
    if mode == "keep" or todo.empty:
        return prices
    out = prices.copy()
    symbols = out["symbol"].to_numpy()
    for row in todo.sort_values("index", ascending=False).itertuples():
        first = int(np.flatnonzero(symbols == row.symbol)[0])
        before = slice(first, row.index)
        if mode == "drop":
            out.loc[out.index[before], "symbol"] = f"{row.symbol}{PRE_SPLIT}{pd.Timestamp(row.date).date()}"
            continue
        for col in ("open", "high", "low", "close", "price"):
            out.iloc[before, out.columns.get_loc(col)] /= row.factor
        volume = out["volume"].to_numpy(dtype=float)
        pre, post = volume[max(first, row.index - 10):row.index], volume[row.index:row.index + 10]
        if len(pre) and len(post) and np.isfinite(np.nanmedian(pre)) and np.nanmedian(pre) > 0:
            jump = np.log(max(np.nanmedian(post), 1e-12) / np.nanmedian(pre))
            if abs(jump - np.log(row.factor)) < abs(jump):  # the volume was not adjusted either
                out.iloc[before, out.columns.get_loc("volume")] *= row.factor
    if mode == "drop":
        out = out.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    return out


def symbol_profile(valid: pd.DataFrame, *, quarantined: int) -> pd.DataFrame:
    """A row per symbol: rows, dates strictly increasing, the longest gap in business days, the largest absolute
    log return and the share of returns that jump by more than ``JUMP``; plus the share of rows quarantined."""
    rows = []
    total = len(valid) + quarantined
    for symbol, group in valid.groupby("symbol", sort=True):
        dates = group["date"].to_numpy()
        gaps = np.busday_count(dates[:-1].astype("datetime64[D]"), dates[1:].astype("datetime64[D]")) \
            if len(dates) > 1 else np.array([0])
        returns = np.abs(np.diff(np.log(group["price"].to_numpy())))
        increasing = bool((np.diff(dates) > np.timedelta64(0)).all())
        rows.append({"symbol": symbol, "rows": len(group), "dates_increasing": increasing,
                     "first_date": str(dates[0])[:10], "last_date": str(dates[-1])[:10],
                     "max_gap_days": int(gaps.max()) if gaps.size else 0,
                     "max_gap_after": str(dates[int(gaps.argmax())])[:10] if gaps.size and len(dates) > 1 else "",
                     "max_abs_return": float(returns.max()) if returns.size else 0.0,
                     "extreme_returns": int((returns > EXTREME_RETURN).sum()),
                     "jump_share": float((returns > JUMP).mean()) if returns.size else 0.0,
                     "quarantined_share": quarantined / max(total, 1)})
    return pd.DataFrame(rows)

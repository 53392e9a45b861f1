"""Leakage-free scaling and sliding windows of every symbol at once, walk-forward folds, baselines, trading metrics.

The prices frame is sorted by symbol then date (``checks.check_prices`` leaves it so). Row r of a symbol carries
the log return from row r-1 to r and log1p(volume). The window starting at row w holds the scaled features of rows
w..w+lag-1 and targets the log return from its last row e = w+lag-1 to e+horizon. Each symbol is scaled with the
mean and standard deviation of its own rows dated before the split, and a training window's target lies before the
split too, so nothing after the split point reaches training.

Windows are never copied: ``FoldWindows.x`` is a sliding-window view of one float32 array of scaled features, a
split is a [lo, hi) range of window starts per symbol, and targets are computed from the price column when a batch
asks for them; training gathers its batches from the view on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FEATURES = ["log_return", "log_volume"]
BLOCK_ROWS = 1 << 16
TARGET_CHUNK = 1 << 16


@dataclass(frozen=True)
class WindowTargets:
    """The targets of the windows, by window start, computed when indexed (float32, like the features).

    ``targets[w]`` is the log return from the window's last row e = w + lag - 1 to e + horizon, the difference
    of the float64 logs of ``price`` rounded to float32; defined for the windows of a split (within one symbol).
    """

    price: np.ndarray
    lag: int
    horizon: int

    def __len__(self) -> int:
        return max(len(self.price) - self.lag + 1, 0)

    def __getitem__(self, starts: np.ndarray | slice | int) -> np.ndarray:
        starts = np.arange(len(self))[starts] if isinstance(starts, slice) else np.asarray(starts, dtype=np.intp)
        flat, out = starts.reshape(-1), np.empty(starts.size, dtype=np.float32)
        for i in range(0, len(flat), TARGET_CHUNK):
            ends = flat[i:i + TARGET_CHUNK] + (self.lag - 1)
            later = np.minimum(ends + self.horizon, len(self.price) - 1)
            np.subtract(np.log(self.price[later]), np.log(self.price[ends]), out=out[i:i + TARGET_CHUNK],
                        casting="same_kind")
        return out.reshape(starts.shape)[()]


@dataclass(frozen=True)
class FoldWindows:
    """The windows of one fold: views of ``scaled`` (rows, F) float32 and targets computed on demand.

    ``x[w]`` (lag, F) and ``y[w]`` are the window starting at frame row w; per symbol (in ``symbols`` order),
    ``rows`` is its [first, end) rows in the frame, ``train`` and ``test`` the [lo, hi) ranges of the window starts
    of each split, ``mean`` and ``std`` its scaler.
    """

    symbols: np.ndarray
    rows: np.ndarray
    scaled: np.ndarray
    x: np.ndarray
    y: WindowTargets
    train: np.ndarray
    test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lag: int
    horizon: int


def symbol_features(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (T-1, F), log prices (T-1,), dates (T-1,)) of one symbol sorted by date, from its second row."""
    prices = np.log(group["price"].to_numpy(dtype=float))
    volume = np.log1p(np.nan_to_num(group["volume"].to_numpy(dtype=float), nan=0.0))
    features = np.column_stack([np.diff(prices), volume[1:]])
    return features, prices[1:], group["date"].to_numpy()[1:]


def _names(symbols: pd.Series, rows: np.ndarray) -> np.ndarray:
    """``symbols`` at ``rows`` as str, taken chunk by chunk from Arrow-backed strings: a take on the whole chunked
    column would first concatenate all of it (a copy of the column)."""
    if not hasattr(symbols.array, "__arrow_array__"):
        return symbols.iloc[rows].to_numpy(dtype=str)
    import pyarrow as pa

    chunked = symbols.array.__arrow_array__()
    offsets = np.cumsum([0, *(len(c) for c in chunked.chunks)])
    which = np.searchsorted(offsets, rows, side="right") - 1
    out = np.empty(len(rows), dtype=object)
    for c in np.unique(which).tolist():
        picked = which == c
        out[picked] = chunked.chunk(c).take(pa.array(rows[picked] - offsets[c])).to_numpy(zero_copy_only=False)
    return out.astype(str)


def symbol_runs(symbols: pd.Series, dates: np.ndarray, *, block_rows: int = BLOCK_ROWS
                ) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each symbol, its name) in a frame sorted by symbol then date; any other order is an error.

    A symbol starts where the date does not increase, or, within a stretch of increasing dates whose first and last
    rows name different symbols (one symbol starting after the previous one ended), where the name changes.
    """
    if len(symbols) == 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=str)
    stamps = dates.view(np.int64)
    cuts = [*range(0, len(stamps) - 1, block_rows), len(stamps) - 1]
    resets = [np.flatnonzero(stamps[a + 1:b + 1] <= stamps[a:b]) + a + 1 for a, b in pairwise(cuts)]
    first = np.concatenate([[0], *resets]).astype(np.intp)
    last = np.append(first[1:], len(symbols)) - 1
    ends = _names(symbols, np.stack([first, last]).ravel()).reshape(2, -1)
    mixed = np.flatnonzero(ends[0] != ends[1])
    if len(mixed):
        splits = [a + np.flatnonzero(part.ne(part.shift()).to_numpy())[1:]
                  for a, b in zip(first[mixed].tolist(), (last[mixed] + 1).tolist(), strict=True)
                  for part in [symbols.iloc[a:b]]]
        first = np.sort(np.concatenate([first, *splits])).astype(np.intp)
        names = _names(symbols, first)
    else:
        names = ends[0]
    if not (names[1:] > names[:-1]).all():
        raise ValueError("prices must be sorted by symbol then date without repeated dates (checks.check_prices "
                         "does)")
    return first, names


def _searchsorted_runs(values: np.ndarray, lo: np.ndarray, hi: np.ndarray, target) -> np.ndarray:
    """``lo[s] + searchsorted(values[lo[s]:hi[s]], target)`` for every run s at once (a vectorised bisection)."""
    lo, hi = lo.copy(), hi.copy()
    last = len(values) - 1
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        below = active & (values[np.minimum(mid, last)] < target)
        lo = np.where(below, mid + 1, lo)
        hi = np.where(active & ~below, mid, hi)


def _scale_column(column: np.ndarray, bounds: np.ndarray, fitted: np.ndarray, counts: np.ndarray,
                  lengths: np.ndarray, spread: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``column`` (one feature of a block of runs of ``lengths`` rows, plus a zero padding row) per run into
    ``out``; ``spread`` is a work buffer as long as ``column``."""
    rows = column[:-1]
    mean = np.where(fitted, np.add.reduceat(column, bounds)[0::2] / np.maximum(counts, 1), 0.0)
    rows -= np.repeat(mean, lengths)
    std = np.sqrt(np.add.reduceat(np.square(column, out=spread), bounds)[0::2] / np.maximum(counts, 1))
    std = np.where(fitted & (std > 0), std, 1.0)
    np.divide(rows, np.repeat(std, lengths), out=out, casting="same_kind")
    return mean, std


def _scale_block(price: np.ndarray, volume: np.ndarray, first: np.ndarray, before: np.ndarray, out: np.ndarray,
                 work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scaled features of a block of whole runs into ``out`` and the per-run scalers fitted on rows
    ``first+1 .. before-1``, computed in the preallocated buffer ``work`` (4, >= n+1)."""
    n = len(price)
    log_price, returns, log_volume, spread = (w[:n + 1] for w in work)
    np.log(price, out=log_price[:n])
    np.subtract(log_price[1:n], log_price[:n - 1], out=returns[1:n])
    returns[first] = returns[n] = 0.0
    log_volume[:n] = volume
    log_volume[n] = 0.0
    if volume.dtype.kind == "f":
        np.nan_to_num(log_volume, copy=False, nan=0.0)
    np.log1p(log_volume, out=log_volume)
    counts = before - first - 1
    bounds = np.empty(2 * len(first), dtype=np.intp)
    bounds[0::2] = first + 1
    bounds[1::2] = np.maximum(before, first + 1)
    lengths = np.diff(np.append(first, n))
    fitted = counts >= 2
    scalers = [_scale_column(c, bounds, fitted, counts, lengths, spread, out[:, i])
               for i, c in enumerate((returns, log_volume))]
    return np.column_stack([m for m, _ in scalers]), np.column_stack([s for _, s in scalers])


def fold_windows(prices: pd.DataFrame, start: np.datetime64, stop: np.datetime64, *, lag: int, horizon: int = 1,
                 scale_before: np.datetime64 | None = None, block_rows: int = BLOCK_ROWS) -> FoldWindows:
    """Scale every symbol on its rows dated before ``scale_before`` (default ``start``; a validation period
    inside the training one may end it earlier) and index the windows of the fold that trains before ``start``
    (target before it too) and tests on windows ending in [start, stop). A symbol with fewer than ``lag`` rows
    before ``scale_before`` is scaled on its rows before ``start``; one with fewer than ``lag`` rows before
    ``start`` has no test windows in the fold (it cannot be scaled without looking ahead).

    One pass over the whole frame (sorted by symbol then date), in blocks of whole symbols of about
    ``block_rows`` rows: no groupby, no per-symbol task, no window copied, no float64 copy of a column (unless
    price is not float64). The fold holds one float32 array of scaled features; targets come from ``price``.
    """
    dates = prices["date"].to_numpy()
    if dates.dtype.kind != "M":
        dates = pd.to_datetime(prices["date"]).to_numpy()
    first, names = symbol_runs(prices["symbol"], dates, block_rows=block_rows)
    n = len(prices)
    end = np.append(first[1:], n)[:len(first)].astype(np.intp)
    before_start = _searchsorted_runs(dates, first, end, start)
    before_stop = _searchsorted_runs(dates, first, end, stop)
    before_fit = before_start if scale_before is None else _searchsorted_runs(dates, first, end,
                                                                              min(scale_before, start))
    history = max(lag, 2)
    before_fit = np.where(before_fit - first >= history, before_fit, before_start)
    price = prices["price"].to_numpy(dtype=float)
    volume = prices["volume"].to_numpy()
    if volume.dtype.kind not in "iuf":
        volume = volume.astype(float)
    scaled = np.empty((n, len(FEATURES)), dtype=np.float32)
    mean, std = np.zeros((len(first), len(FEATURES))), np.ones((len(first), len(FEATURES)))
    cuts = np.unique(np.append(np.searchsorted(first, np.arange(0, n, block_rows)), len(first)))
    widest = int((end[cuts[1:] - 1] - first[cuts[:-1]]).max()) if len(first) else 0
    work = np.empty((4, widest + 1))
    for i, j in zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True):
        a, b = first[i], end[j - 1]
        mean[i:j], std[i:j] = _scale_block(price[a:b], volume[a:b], first[i:j] - a, before_fit[i:j] - a,
                                           scaled[a:b], work)
    lo, hi = first + lag, end - horizon
    train_hi = np.maximum(np.minimum(hi, before_start - horizon), lo)
    test_lo = np.maximum(before_start, lo)
    test_hi = np.maximum(np.minimum(hi, before_stop), test_lo)
    test_hi = np.where(before_start - first >= history, test_hi, test_lo)
    if n >= lag:
        x = sliding_window_view(scaled, lag, axis=0).transpose(0, 2, 1)
    else:
        x = np.empty((0, lag, len(FEATURES)), dtype=np.float32)
    return FoldWindows(symbols=names, rows=np.column_stack([first, end]),
                       scaled=scaled, x=x, y=WindowTargets(price, lag, horizon),
                       train=np.column_stack([lo, train_hi]) - lag + 1,
                       test=np.column_stack([test_lo, test_hi]) - lag + 1, mean=mean, std=std, lag=lag, horizon=horizon)


def window_starts(ranges: np.ndarray) -> np.ndarray:
    """The window starts of a set of [lo, hi) ranges, in order (symbol by symbol)."""
    counts = ranges[:, 1] - ranges[:, 0]
    total = int(counts.sum())
    offsets = np.repeat(ranges[:, 0] - (np.cumsum(counts) - counts), counts)
    return np.arange(total, dtype=np.intp) + offsets


def window_symbols(ranges: np.ndarray) -> np.ndarray:
    """Index of the symbol of each window of ``window_starts(ranges)``."""
    return np.repeat(np.arange(len(ranges)), ranges[:, 1] - ranges[:, 0])


def target_dates(fold: FoldWindows, starts: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """The date of the target of each window starting at ``starts`` (``dates``: the frame's date column)."""
    return dates[starts + fold.lag - 1 + fold.horizon]


def validation_split(fold: FoldWindows, starts: np.ndarray, dates: np.ndarray, *, share: float = 0.15
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) windows among the training windows ``starts``, split by time across all symbols.

    Validation holds the windows whose targets fall on the latest dates, from the date where about ``share`` of
    the windows remain, so every validation target is dated strictly after every fit target. When all targets
    fall on one date, fit is empty.
    """
    when = target_dates(fold, starts, dates)
    if len(when) == 0:
        return starts, starts
    ordered = np.sort(when)
    cut = ordered[min(int(len(ordered) * (1 - share)), len(ordered) - 1)]
    if cut == ordered[0] and ordered[-1] > cut:
        cut = ordered[np.searchsorted(ordered, cut, side="right")]
    late = when >= cut
    return starts[~late], starts[late]


def gather_windows(fold: FoldWindows, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, lag, F) float32, y (N,) float32) of the windows starting at ``starts``: a copy, for a batch."""
    return fold.x[starts], fold.y[starts]


def fold_boundaries(dates: np.ndarray, folds: int, *, test_share: float = 0.3) -> list[np.datetime64]:
    """Expanding walk-forward: ``folds`` + 1 boundaries; fold k trains before b_k and tests on [b_k, b_k+1).

    The distinct dates come from a hash table (``pd.unique``), not a sorted copy of the whole column."""
    unique = np.sort(pd.unique(dates))
    positions = np.linspace(1 - test_share, 1, folds + 1)
    cut = [unique[min(int(round(p * (len(unique) - 1))), len(unique) - 1)] for p in positions[:-1]]
    return cut + [unique[-1] + np.timedelta64(1, "D")]


def fit_linear_window(fold: FoldWindows, starts: np.ndarray, *, alpha: float = 1.0, chunk: int = 65536
                      ) -> tuple[np.ndarray, float]:
    """Ridge regression (with intercept) of the target on the flattened window, from normal equations summed over
    chunks of windows gathered from the view: the same fit as scikit-learn's ``Ridge(alpha)`` without a copy of
    the training windows."""
    width = fold.lag * fold.x.shape[2]
    xtx, xty, sx, sy = np.zeros((width, width)), np.zeros(width), np.zeros(width), 0.0
    for i in range(0, len(starts), chunk):
        x, y = gather_windows(fold, starts[i:i + chunk])
        x, y = x.reshape(len(x), -1).astype(np.float64), y.astype(np.float64)
        xtx += x.T @ x
        xty += x.T @ y
        sx += x.sum(axis=0)
        sy += y.sum()
    n = len(starts)
    if n == 0:
        return np.zeros(width), 0.0
    mx, my = sx / n, sy / n
    coef = np.linalg.solve(xtx - n * np.outer(mx, mx) + alpha * np.eye(width), xty - n * mx * my)
    return coef, float(my - mx @ coef)


def baseline_forecasts(fold: FoldWindows, price: np.ndarray, *, train: np.ndarray, test: np.ndarray,
                       chunk: int = 65536) -> dict:
    """Persistence (no change), moving average of the window's returns, ridge regression on the window; for the
    windows starting at ``test`` (``price``: the frame's price column), the linear model fitted on those starting
    at ``train``."""
    coef, intercept = fit_linear_window(fold, train, chunk=chunk)
    ends = test + fold.lag - 1
    linear = [fold.x[test[i:i + chunk]].reshape(-1, len(coef)).astype(np.float64) @ coef
              for i in range(0, len(test), chunk)]
    return {
        "persistence": np.zeros(len(test)),
        "moving_average": np.log(price[ends] / price[ends - fold.lag]) / fold.lag * fold.horizon,
        "linear_window": np.concatenate(linear) + intercept if linear else np.zeros(0),
    }


def strategy_gain(actual: np.ndarray, predicted: np.ndarray, *, cost: float = 0.0005, horizon: int = 1,
                  series: np.ndarray | None = None) -> dict:
    """Long when the forecast is up, flat otherwise, paying ``cost`` per position change; log returns summed,
    against buy-and-hold over the same periods.

    Windows are in date order within each ``series`` (one id per window; default: one series). A window's
    ``actual`` is the return over the next ``horizon`` steps, so with ``horizon`` h > 1 consecutive windows
    overlap: positions are then held over non-overlapping periods, every h-th window of each series, else each
    step's return would be counted h times. Each series starts flat."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    series = np.zeros(len(actual), dtype=np.int64) if series is None else np.asarray(series)
    n = len(actual)
    first = np.r_[True, series[1:] != series[:-1]][:n]
    rank = np.arange(n) - np.maximum.accumulate(np.where(first, np.arange(n), 0))  # position within its series
    held = rank % max(horizon, 1) == 0
    actual, position, first = actual[held], (predicted[held] > 0).astype(float), first[held]
    before = np.where(first, 0.0, np.r_[0.0, position[:-1]])
    trades = np.abs(position - before)
    strategy = float((position * actual).sum() - cost * trades.sum())
    hold = float(actual.sum())
    return {"strategy_log_return": strategy, "buy_and_hold_log_return": hold, "gain_vs_buy_and_hold": strategy - hold,
            "trades": int(trades.sum()), "holding_periods": int(held.sum())}

"""Leakage-free scaling and sliding windows per symbol, walk-forward folds, baselines and trading metrics.

A window ending at row t holds the scaled features of rows t-lag+1..t and targets the log return from t to
t+horizon. Scalers are fitted on rows dated before the split only; a training window's target lies before the
split too, so nothing after the split point reaches training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FEATURES = ["log_return", "log_volume"]


def symbol_features(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (T-1, F), log prices (T-1,), dates (T-1,)) of one symbol sorted by date, from its second row."""
    prices = np.log(group["price"].to_numpy(dtype=float))
    volume = np.log1p(np.nan_to_num(group["volume"].to_numpy(dtype=float), nan=0.0))
    features = np.column_stack([np.diff(prices), volume[1:]])
    return features, prices[1:], group["date"].to_numpy()[1:]


def fit_scaler(features: np.ndarray, dates: np.ndarray, split: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature over rows dated before ``split``."""
    train = features[dates < split]
    if len(train) < 2:
        return np.zeros(features.shape[1]), np.ones(features.shape[1])
    std = train.std(axis=0)
    return train.mean(axis=0), np.where(std > 0, std, 1.0)


def make_windows(scaled: np.ndarray, log_prices: np.ndarray, *, lag: int, horizon: int = 1
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (N, lag, F) as a zero-copy view, y (N,) log return over the horizon, end row of each window)."""
    n = len(scaled) - lag + 1 - horizon
    if n <= 0:
        return np.empty((0, lag, scaled.shape[1])), np.empty(0), np.empty(0, dtype=int)
    windows = sliding_window_view(scaled, lag, axis=0)[:n].transpose(0, 2, 1)
    end = np.arange(lag - 1, lag - 1 + n)
    return windows, log_prices[end + horizon] - log_prices[end], end


def fold_boundaries(dates: np.ndarray, folds: int, *, test_share: float = 0.3) -> list[np.datetime64]:
    """Expanding walk-forward: ``folds`` + 1 boundaries; fold k trains before b_k and tests on [b_k, b_k+1)."""
    unique = np.unique(dates)
    positions = np.linspace(1 - test_share, 1, folds + 1)
    cut = [unique[min(int(round(p * (len(unique) - 1))), len(unique) - 1)] for p in positions[:-1]]
    return cut + [unique[-1] + np.timedelta64(1, "D")]


def symbol_fold(group: pd.DataFrame, start: np.datetime64, stop: np.datetime64, *, lag: int,
                horizon: int) -> dict:
    """Train and test windows of one symbol for the fold that tests on [start, stop).

    Dates are sorted, so training windows (target before ``start``) are a prefix and test windows (ending in
    [start, stop)) a contiguous range: both are slices, so the windows stay views of the scaled features.
    """
    features, log_prices, dates = symbol_features(group)
    mean, std = fit_scaler(features, dates, start)
    x, y, end = make_windows((features - mean) / std, log_prices, lag=lag, horizon=horizon)
    n = len(end)
    first_test, first_after = np.searchsorted(dates, [start, stop]).tolist()
    train = slice(0, min(max(first_test - horizon - lag + 1, 0), n))
    test_from = min(max(first_test - lag + 1, 0), n)
    test = slice(test_from, min(max(first_after - lag + 1, test_from), n))
    returns = sliding_window_view(features[:, 0], lag)[:n] if n else np.empty((0, lag))
    return {"symbol": group["symbol"].iloc[0], "x_train": x[train], "y_train": y[train], "x_test": x[test],
            "y_test": y[test], "test_dates": dates[end][test], "test_log_price": log_prices[end][test],
            "returns_test": returns[test], "scaler": (mean.tolist(), std.tolist())}


def baseline_forecasts(train: dict, test_x: np.ndarray, test_returns: np.ndarray, horizon: int) -> dict:
    """Persistence (no change), moving average of the window's returns, linear regression on the window."""
    from sklearn.linear_model import Ridge

    flat = train["x"].reshape(len(train["x"]), -1)
    ridge = Ridge(alpha=1.0).fit(flat, train["y"]) if len(flat) else None
    return {
        "persistence": np.zeros(len(test_x)),
        "moving_average": test_returns.mean(axis=1) * horizon if len(test_x) else np.zeros(0),
        "linear_window": ridge.predict(test_x.reshape(len(test_x), -1)) if ridge is not None else np.zeros(len(test_x)),
    }


def strategy_gain(actual: np.ndarray, predicted: np.ndarray, *, cost: float = 0.0005) -> dict:
    """Long when the forecast is up, flat otherwise, paying ``cost`` per position change; log returns summed,
    against buy-and-hold over the same steps."""
    position = (predicted > 0).astype(float)
    trades = np.abs(np.diff(np.concatenate([[0.0], position])))
    strategy = float((position * actual).sum() - cost * trades.sum())
    hold = float(actual.sum())
    return {"strategy_log_return": strategy, "buy_and_hold_log_return": hold, "gain_vs_buy_and_hold": strategy - hold,
            "trades": int(trades.sum())}

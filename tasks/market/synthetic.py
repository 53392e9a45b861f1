"""Synthetic daily prices: a geometric random walk with volatility regimes and a little momentum, on a
trading-day calendar with holidays, with volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HOLIDAYS = ["01-01", "07-04", "12-25", "11-28", "05-27", "09-02"]


def trading_days(start: str, periods: int) -> pd.DatetimeIndex:
    days = pd.bdate_range(start, periods=int(periods * 1.05) + 10)
    days = days[~days.strftime("%m-%d").isin(HOLIDAYS)]
    return days[:periods]


def synthetic_prices(*, symbols: int = 4, days: int = 750, seed: int = 0) -> pd.DataFrame:
    """Long-form OHLCV for ``symbols`` symbols over ``days`` trading days."""
    rng = np.random.default_rng(seed)
    dates = trading_days("2021-01-04", days)
    frames = []
    for s in range(symbols):
        calm, stormy = 0.008 + 0.004 * rng.random(), 0.025 + 0.01 * rng.random()
        regime = np.cumsum(rng.random(days) < 0.01) % 2
        vol = np.where(regime == 1, stormy, calm)
        shocks = rng.normal(0.0003, 1.0, days) * vol
        returns = np.zeros(days)
        for t in range(1, days):
            returns[t] = 0.15 * returns[t - 1] + shocks[t]
        close = 50 * (1 + s) * np.exp(np.cumsum(returns))
        open_ = close * np.exp(rng.normal(0, 0.3, days) * vol)
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.5, days)) * vol)
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.5, days)) * vol)
        volume = (1e6 * (1 + 20 * np.abs(returns)) * rng.lognormal(0, 0.2, days)).astype(int)
        frames.append(pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "symbol": f"SYM{s}", "open": open_,
                                    "high": high, "low": low, "close": close, "volume": volume}))
    return pd.concat(frames, ignore_index=True)


def write_synthetic_prices(path: str | Path, **kwargs) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    synthetic_prices(**kwargs).to_csv(path, index=False)
    return str(path)


def example(folder: Path) -> dict:
    """A long-form OHLCV CSV of three symbols over 250 trading days; the parameters that run on it."""
    return {"input": write_synthetic_prices(Path(folder) / "prices.csv", symbols=3, days=250)}

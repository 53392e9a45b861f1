"""The files of a market run folder."""

from __future__ import annotations

from tasks.runs import RunFiles, run_file


class MarketFiles(RunFiles):
    prices = run_file("prices.parquet", "the prices as read, one row per symbol and date")
    valid_prices = run_file("valid_prices.parquet", "the checked prices the run uses")
    symbol_profile = run_file("symbol_profile.parquet", "one row per symbol, for the gate")
    walk_forward = run_file("walk_forward.parquet", "every walk-forward test window: forecasts and actuals")
    forecasts = run_file("forecasts.parquet", "the next-step forecast of each symbol")

"""The market run's report.html: walk-forward metrics against baselines, forecasts against prices."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from prefect import task

from tasks import evaluate


def plot_forecasts(frame: pd.DataFrame, symbols: list[str]) -> bytes:
    """Actual prices and the price each forecast implied, over the test periods of the folds."""
    fig, axes = plt.subplots(len(symbols), 1, figsize=(9, 2.6 * len(symbols)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], symbols, strict=True):
        part = frame[frame["symbol"] == symbol].sort_values("date")
        ax.plot(part["date"], part["price"] * np.exp(part["actual_return"]), lw=1, label="actual")
        ax.plot(part["date"], part["price"] * np.exp(part["predicted_return"]), lw=1, label="forecast (LSTM)")
        ax.set_title(symbol, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return evaluate._png(fig)


def plot_equity(frame: pd.DataFrame, cost: float) -> bytes:
    """Cumulative log return of long/flat on the forecast sign against buy-and-hold (all symbols pooled)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ordered = frame.sort_values(["date", "symbol"])
    position = (ordered["predicted_return"] > 0).astype(float)
    ax.plot(ordered["date"], ordered["actual_return"].cumsum(), label="buy and hold")
    ax.plot(ordered["date"], (position * ordered["actual_return"]).cumsum(), label="long/flat on forecast")
    ax.set(title=f"Strategy vs buy-and-hold (before costs; cost per trade {cost})", ylabel="cumulative log return")
    ax.legend()
    return evaluate._png(fig)


def build_report(run: dict) -> evaluate.Report:
    run_dir = Path(run["dir"])
    report = evaluate.run_report(run)
    if run["metrics"]:
        report.heading("Walk-forward evaluation (expanding window, by time)")
        report.table(evaluate.metrics_table(run["metrics"], run["baselines"]), caption="Mean over folds")
        report.table([{"fold": f["fold"], "test": f"{f['test_from']} .. {f['test_to']}", "windows": f["test_windows"],
                       **{f"{m}_rmse": f[m]["rmse"] for m in ("lstm", "persistence", "moving_average",
                                                               "linear_window")}}
                      for f in run["metrics"]["folds"]], caption="RMSE per fold")
    frame_path = run_dir / "walk_forward.parquet"
    if frame_path.exists():
        frame = pd.read_parquet(frame_path)
        symbols = sorted(frame["symbol"].unique())[:3]
        report.figure("forecasts", plot_forecasts(frame, symbols), caption="Forecasts against actual prices")
        report.figure("equity", plot_equity(frame, run["parameters"].get("cost", 0.0005)))
    training = run_dir / "training.json"
    if training.exists():
        history = json.loads(training.read_text()).get("history") or {}
        if history.get("train_loss"):
            report.figure("loss", evaluate.plot_loss(history), caption="Loss of the last fold's LSTM")
    if (run_dir / "forecasts.parquet").exists():
        report.table(pd.read_parquet(run_dir / "forecasts.parquet"), caption="Next-step forecasts")
    return report


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html and publish its metrics and summary as Prefect artifacts."""
    description = "Walk-forward metrics of the LSTM and its baselines"
    return evaluate.publish_run(run, build_report(run), metrics_description=description)

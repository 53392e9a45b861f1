"""The market run's report.html: walk-forward metrics against baselines, forecasts against prices."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from prefect import task

from tasks import insight_report
from tasks.figures import plot_loss, png
from tasks.market.files import MarketFiles
from tasks.metrics import metrics_table
from tasks.reporting import Report, publish_run, run_report


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
    return png(fig)


def plot_equity(frame: pd.DataFrame, cost: float) -> bytes:
    """Cumulative log return of long/flat on the forecast sign against buy-and-hold (all symbols pooled)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ordered = frame.sort_values(["date", "symbol"])
    position = (ordered["predicted_return"] > 0).astype(float)
    ax.plot(ordered["date"], ordered["actual_return"].cumsum(), label="buy and hold")
    ax.plot(ordered["date"], (position * ordered["actual_return"]).cumsum(), label="long/flat on forecast")
    ax.set(title=f"Strategy vs buy-and-hold (before costs; cost per trade {cost})", ylabel="cumulative log return")
    ax.legend()
    return png(fig)


def volatility_regimes(frame: pd.DataFrame, *, window: int = 20) -> pd.Series:
    """low / mid / high: terciles of each symbol's trailing volatility of actual returns (known before the date)."""
    ordered = frame.sort_values(["symbol", "date"])
    trailing = ordered.groupby("symbol")["actual_return"].transform(
        lambda r: r.shift(1).rolling(window, min_periods=max(2, window // 4)).std())
    regimes = pd.qcut(trailing.rank(method="first"), 3, labels=["low", "mid", "high"])
    return regimes.reindex(frame.index).astype(str).where(trailing.reindex(frame.index).notna(), "unknown")


def error_by_regime(frame: pd.DataFrame) -> pd.DataFrame:
    """RMSE of the LSTM and of persistence (a zero return) per volatility regime."""
    rows = []
    for regime, part in frame.assign(regime=volatility_regimes(frame)).groupby("regime"):
        error = part["actual_return"] - part["predicted_return"]
        rows.append({"regime": regime, "windows": len(part), "lstm_rmse": float(np.sqrt(np.mean(error**2))),
                     "zero_return_rmse": float(np.sqrt(np.mean(part["actual_return"] ** 2)))})
    return pd.DataFrame(rows)


def plot_residuals(frame: pd.DataFrame) -> bytes:
    """Residual histogram against a normal, residuals against the forecast, and their autocorrelation."""
    from scipy import stats

    residual = (frame["actual_return"] - frame["predicted_return"]).to_numpy()
    fig, (hist, scatter, acf) = plt.subplots(1, 3, figsize=(13, 3.6))
    hist.hist(residual, bins=60, density=True, alpha=0.7)
    grid = np.linspace(residual.min(), residual.max(), 200)
    hist.plot(grid, stats.norm.pdf(grid, residual.mean(), residual.std()), "k--", lw=1, label="normal")
    hist.set(title=f"Residuals (kurtosis {stats.kurtosis(residual):.1f})", xlabel="actual - forecast")
    hist.legend(fontsize=7)
    scatter.scatter(frame["predicted_return"], residual, s=3, alpha=0.3)
    scatter.axhline(0, color="k", lw=0.5)
    scatter.set(title="Residual against forecast", xlabel="forecast return", ylabel="residual")
    ordered = frame.assign(residual=residual).sort_values(["symbol", "date"])
    lags = range(1, 11)
    values = [ordered.groupby("symbol")["residual"].apply(lambda r, lag=lag: r.autocorr(lag)).mean() for lag in lags]
    acf.bar(list(lags), values)
    bound = 1.96 / np.sqrt(max(len(residual) / max(frame["symbol"].nunique(), 1), 1))
    acf.axhspan(-bound, bound, color="grey", alpha=0.2)
    acf.set(title="Residual autocorrelation (mean over symbols)", xlabel="lag")
    fig.tight_layout()
    return png(fig)


def plot_intervals(frame: pd.DataFrame, symbol: str) -> bytes:
    """One symbol's actual returns inside the 90 % MC-dropout forecast interval."""
    part = frame[frame["symbol"] == symbol].sort_values("date").tail(250)
    inside = (part["actual_return"] >= part["lower_90"]) & (part["actual_return"] <= part["upper_90"])
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.fill_between(part["date"], part["lower_90"], part["upper_90"], color="tab:blue", alpha=0.25,
                    label="90% interval")
    ax.plot(part["date"], part["predicted_return"], lw=1, label="forecast")
    ax.scatter(part["date"], part["actual_return"], s=5, c=np.where(inside, "k", "tab:red"), label="actual")
    ax.set(title=f"{symbol}: forecast intervals (coverage here {inside.mean():.0%})", ylabel="return")
    ax.legend(fontsize=7)
    return png(fig)


def plot_splits(raw: pd.DataFrame, checked: pd.DataFrame, splits: list[dict]) -> bytes:
    """Each symbol with a split in its prices: the price as read and as the run used it, the split marked."""
    shown = list(dict.fromkeys(s["symbol"] for s in splits))[:4]
    fig, axes = plt.subplots(len(shown), 1, figsize=(9, 2.8 * len(shown)), squeeze=False)
    for ax, symbol in zip(axes[:, 0], shown, strict=True):
        part = raw[raw["symbol"] == symbol].sort_values("date")
        ax.plot(part["date"], part["price"], lw=1, color="tab:red", label="as read")
        used = checked[checked["symbol"].str.startswith(symbol)].sort_values("date")
        ax.plot(used["date"], used["price"], lw=1, color="tab:blue", label="as used")
        for split in (s for s in splits if s["symbol"] == symbol):
            ax.axvline(pd.Timestamp(split["date"]), color="k", ls="--", lw=0.8)
            ax.annotate(f"{split['split']} ({split['action']})", (pd.Timestamp(split["date"]), ax.get_ylim()[1]),
                        fontsize=7, va="top", ha="left")
        ax.set(title=f"{symbol}: likely stock split", ylabel="price")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png(fig)


def build_report(run: dict) -> Report:
    run_dir = Path(run["dir"])
    report = run_report(run)
    splits = [s for s in (run.get("inputs") or {}).get("splits", []) if s.get("in_prices")]
    files = MarketFiles(run_dir)
    if splits and files.prices.exists() and files.valid_prices.exists():
        report.figure("splits", plot_splits(pd.read_parquet(files.prices),
                                            pd.read_parquet(files.valid_prices), splits),
                      caption="Stock splits found in the prices, and the series the run used")
    if run["metrics"]:
        report.heading("Walk-forward evaluation (expanding window, by time)")
        means = {k: v for k, v in run["metrics"].items() if k != "folds"}
        report.table(metrics_table(means, run["baselines"]), caption="Mean over folds")
        if run["metrics"].get("folds"):
            report.table([{"fold": f["fold"], "validation from": f.get("validation_from"),
                           "test": f"{f['test_from']} .. {f['test_to']}", "windows": f["test_windows"],
                           "forecast kept": f.get("shrink"),
                           **{f"{m}_rmse": f[m]["rmse"] for m in ("lstm", "persistence", "moving_average",
                                                                   "linear_window")}}
                          for f in run["metrics"]["folds"]],
                         caption="RMSE per fold; 'forecast kept' is the share of the LSTM's forecast it keeps, chosen "
                                 "on the validation windows")
    frame_path = files.walk_forward
    if frame_path.exists() and len(pd.read_parquet(frame_path)):
        frame = pd.read_parquet(frame_path)
        symbols = sorted(frame["symbol"].unique())[:3]
        report.figure("forecasts", plot_forecasts(frame, symbols), caption="Forecasts against actual prices")
        report.figure("equity", plot_equity(frame, run["parameters"].get("cost", 0.0005)))
        report.heading("Residual diagnostics")
        report.figure("residuals", plot_residuals(frame), caption="Residuals of every walk-forward test window")
        report.table(error_by_regime(frame), caption="Error by volatility regime (trailing 20-step volatility)")
        if "lower_90" in frame.columns:
            inside = (frame["actual_return"] >= frame["lower_90"]) & (frame["actual_return"] <= frame["upper_90"])
            report.text(f"90% forecast intervals (MC dropout spread plus validation noise) hold {inside.mean():.1%} "
                        "of the actual returns over all test windows.")
            report.figure("intervals", plot_intervals(frame, symbols[0]))
    training = files.training
    if training.exists():
        history = json.loads(training.read_text()).get("history") or {}
        if history.get("train_loss"):
            report.figure("loss", plot_loss(history), caption="Loss of the last fold's LSTM")
    if files.forecasts.exists():
        report.table(pd.read_parquet(files.forecasts), caption="Next-step forecasts")
    insight_report.tuning_section(report, run_dir)
    return report


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html and publish its metrics and summary as Prefect artifacts."""
    description = "Walk-forward metrics of the LSTM and its baselines"
    return publish_run(run, build_report(run), metrics_description=description)

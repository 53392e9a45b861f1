"""Prefect tasks of the market pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.architectures import build
from models.lifecycle import (
    run_lifecycle,
    write_result,
)
from models.registry import ModelRegistry
from models.train import predict
from tasks.common import save_quarantine, stage
from tasks.errors import BadInputError
from tasks.market import checks, forecaster, sources, windows
from tasks.market.files import MarketFiles
from tasks.results import Checked, Ingested, Output, Trained
from tasks.store import fetch, read_parquet, write_parquet


@stage("ingest", "ingest prices")
def ingest_prices(run_dir: str, *, input: str | None, symbol: str | None = None, target: str | None = None,
                  date_column: str | None = None, volume_column: str | None = None, seed: int = 0) -> Ingested:
    """Read long or wide prices (or write the synthetic set first) into one long table; say how it was read."""
    if input is None:
        from tasks.market.synthetic import write_synthetic_prices

        input = write_synthetic_prices(Path(run_dir) / "input" / "prices.csv", seed=seed)
    prices, read = sources.read_prices(fetch(input), symbol=symbol, target=target, date_column=date_column,
                                       volume_column=volume_column)
    return Ingested(output=write_parquet(prices, MarketFiles(run_dir).prices), read=read)


@dataclass(frozen=True, kw_only=True)
class CheckedPrices(Checked):
    unsorted_rows: int  # rows out of date order, sorted
    splits: list  # the stock splits found: symbol, date, ratio, whether in the prices and what the run did


@stage("check", "check prices")
def check_prices(prices_uri: str, run_dir: str, *, splits: str = "adjust", adjusted: bool = False) -> CheckedPrices:
    """Quarantine faulty rows; find the stock splits left in the prices and adjust for them (or split the series
    there, or keep them); profile every symbol for the gate."""
    prices = read_parquet(prices_uri)
    valid, quarantined, unsorted = checks.check_prices(prices)
    if valid.empty:
        raise BadInputError(f"no usable price left after the checks ({quarantined['reason'].value_counts().to_dict()})")
    found = checks.find_splits(valid, adjusted=adjusted)
    valid = checks.apply_splits(valid, found, mode=splits)
    record = quarantined["symbol"] + "@" + quarantined["date"].astype(str)
    files = MarketFiles(run_dir)
    save_quarantine([quarantined.assign(kind="price", record=record)], files.quarantine)
    profile = checks.symbol_profile(valid, quarantined=len(quarantined))
    found = found.drop(columns="index").assign(date=found["date"].astype(str).str[:10],
                                               action=np.where(found["in_prices"], splits, "none: already adjusted"))
    return CheckedPrices(output=write_parquet(valid, files.valid_prices),
                         profile=write_parquet(profile, files.symbol_profile), records_in=len(prices),
                         records_valid=len(valid), records_quarantined=len(quarantined), unsorted_rows=unsorted,
                         splits=found.to_dict("records"))


@stage("walk_forward", "walk-forward evaluation and training")
def walk_forward(prices_uri: str, run_dir: str, models_root: str, *, mode: str = "auto", lag: int = 20,
                 horizon: int = 1, folds: int = 3, epochs: int = 15, hidden: int = 32, cost: float = 0.0005,
                 model_name: str = "market", seed: int = 0, mc_samples: int = 0, tune: int = 0) -> Trained:
    """The one model lifecycle (models/lifecycle.py) over expanding-window folds by time: a challenger is the LSTM
    walked forward against three baselines on the same windows of every fold, the last fold's model kept; it is
    compared with a compatible champion (same lag and horizon) on the last fold's validation windows (which
    precede its test period) that the champion never saw, each with its own scalers. Without training, the
    champion is measured on the last fold's test windows it never saw."""
    settings = forecaster.MarketSettings(lag=lag, horizon=horizon, folds=folds, epochs=epochs, hidden=hidden, cost=cost,
                              seed=seed, mc_samples=mc_samples, tune=tune)
    spec = forecaster.MarketSpec(sources.read_checked_prices(prices_uri), settings)
    registry = ModelRegistry(models_root)
    keys = spec.keys()
    decision = run_lifecycle(spec, registry, model_name, mode=mode, keys=keys, split=spec.split,
                             no_champion=f"there is no champion model {model_name!r} for --lag {lag} and --horizon "
                                         f"{horizon} covering these symbols; run with --train auto")
    if decision.fitted is not None:
        outputs = decision.fitted.outputs
        per_fold, frame = outputs["per_fold"], outputs["forecasts"]
        summary = forecaster.mean_over_folds(per_fold)
        metrics = {**summary["lstm"], "folds": per_fold}
        baselines = {k: v for k, v in summary.items() if k != "lstm"}
    else:
        metrics, baselines, frame = forecaster.champion_metrics(spec, decision, registry, keys)
    files = MarketFiles(run_dir)
    write_parquet(frame, files.walk_forward)
    return write_result(decision, files.training, metrics=metrics, baselines=baselines)


@stage("forecast", "forecast the next step")
def forecast_next(prices_uri: str, training_uri: str, run_dir: str, models_root: str) -> Output:
    """Next-step forecast per symbol from its latest window, as a return and as a price, by the model the lifecycle
    chose (the champion after the decision)."""
    from tasks.store import read_json

    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["scored_with"])
    model = registry.load(info["name"], info["scored_with"], build(card))
    lag = card.parameters["lag"]
    rows = []
    for symbol, group in sources.read_checked_prices(prices_uri).groupby("symbol", sort=True):
        if checks.PRE_SPLIT in symbol:  # the rows before a dropped split: that series has ended
            continue
        features, log_prices, dates = windows.symbol_features(group.reset_index(drop=True))
        if len(features) < lag or symbol not in card.scalers:
            continue
        mean, std = (np.asarray(v) for v in card.scalers[symbol])
        x = ((features[-lag:] - mean) / std)[None].astype(np.float32)
        ret = float(predict(model, torch.as_tensor(x))[0] * card.parameters["target_scale"])
        rows.append({"symbol": symbol, "last_date": str(dates[-1])[:10], "last_price": float(np.exp(log_prices[-1])),
                     "predicted_log_return": ret, "predicted_price": float(np.exp(log_prices[-1] + ret)),
                     "horizon": card.parameters["horizon"]})
    return Output(output=write_parquet(pd.DataFrame(rows), MarketFiles(run_dir).forecasts))

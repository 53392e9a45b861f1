"""Prefect tasks of the market pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from torch import nn
from torch.utils.data import Dataset

from models.market import LSTMForecaster
from models.registry import ModelRegistry
from models.train import TrainConfig, predict, predict_mc, seed_everything, train_model
from tasks.common import save_quarantine
from tasks.errors import BadInputError
from tasks.evaluate import regression_metrics
from tasks.market import checks, sources, windows
from tasks.store import fetch, read_parquet, write_json, write_parquet

CACHED = {"cache_policy": INPUTS + TASK_SOURCE, "persist_result": True}


def _run(run_dir: str, name: str) -> str:
    return str(Path(run_dir) / name)


@task(name="ingest prices", **CACHED)
def ingest_prices(run_dir: str, *, input: str | None, symbol: str | None = None, target: str | None = None,
                  date_column: str | None = None, volume_column: str | None = None, seed: int = 0) -> dict:
    """Read long or wide prices (or write the synthetic set first) into one long table; say how it was read."""
    if input is None:
        from tasks.market.synthetic import write_synthetic_prices

        input = write_synthetic_prices(Path(run_dir) / "input" / "prices.csv", seed=seed)
    prices, read = sources.read_prices(fetch(input), symbol=symbol, target=target, date_column=date_column,
                                       volume_column=volume_column)
    return {"output": write_parquet(prices, _run(run_dir, "prices.parquet")), "read": read}


@task(name="check prices", **CACHED)
def check_prices(prices_uri: str, run_dir: str, *, splits: str = "adjust", adjusted: bool = False) -> dict:
    """Quarantine faulty rows; find the stock splits left in the prices and adjust for them (or split the series
    there, or keep them); profile every symbol for the gate."""
    prices = read_parquet(prices_uri)
    valid, quarantined, unsorted = checks.check_prices(prices)
    if valid.empty:
        raise BadInputError(f"no usable price left after the checks ({quarantined['reason'].value_counts().to_dict()})")
    found = checks.find_splits(valid, adjusted=adjusted)
    valid = checks.apply_splits(valid, found, mode=splits)
    record = quarantined["symbol"] + "@" + quarantined["date"].astype(str)
    save_quarantine([quarantined.assign(kind="price", record=record)], _run(run_dir, "quarantine.parquet"))
    profile = checks.symbol_profile(valid, quarantined=len(quarantined))
    found = found.drop(columns="index").assign(date=found["date"].astype(str).str[:10],
                                               action=np.where(found["in_prices"], splits, "none: already adjusted"))
    return {"output": write_parquet(valid, _run(run_dir, "valid_prices.parquet")),
            "profile": write_parquet(profile, _run(run_dir, "symbol_profile.parquet")),
            "records_in": len(prices), "records_valid": len(valid), "records_quarantined": len(quarantined),
            "unsorted_rows": unsorted, "splits": found.to_dict("records")}


class WindowDataset(Dataset):
    """Windows of a fold drawn from its zero-copy view: a batch is gathered (float32) only when the loader asks,
    so no stacked copy of the training windows exists; the targets (one float32 per window, divided by
    ``target_scale``) are computed once, not per batch."""

    def __init__(self, fold: windows.FoldWindows, starts: np.ndarray, *, target_scale: float = 1.0) -> None:
        self.fold, self.starts = fold, starts
        self.targets = fold.y[starts] / np.float32(target_scale)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        picked = np.asarray(indices, dtype=np.intp)
        x = self.fold.x[self.starts[picked]]
        return list(zip(torch.from_numpy(x), torch.from_numpy(self.targets[picked]), strict=True))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]


def predict_windows(model: nn.Module, fold: windows.FoldWindows, starts: np.ndarray, *, chunk: int = 65536
                    ) -> np.ndarray:
    """The model's outputs for the windows starting at ``starts``, gathered from the view a chunk at a time."""
    outputs = [predict(model, fold.x[starts[i:i + chunk]]) for i in range(0, len(starts), chunk)]
    return np.concatenate(outputs) if outputs else np.empty(0)


def predict_windows_mc(model: nn.Module, fold: windows.FoldWindows, starts: np.ndarray, *, samples: int,
                       seed: int = 0, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo dropout mean and standard deviation for the windows starting at ``starts``."""
    parts = [predict_mc(model, fold.x[starts[i:i + chunk]], samples=samples, seed=seed)
             for i in range(0, len(starts), chunk)]
    if not parts:
        return np.empty(0), np.empty(0)
    return np.concatenate([m for m, _ in parts]), np.concatenate([s for _, s in parts])


def forecast_interval(mean: np.ndarray, mc_std: np.ndarray, noise_var: float, *,
                      level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """A normal predictive interval: model spread from MC dropout plus the noise variance of validation residuals."""
    from scipy.stats import norm

    half = norm.ppf(0.5 + level / 2) * np.sqrt(mc_std**2 + noise_var)
    return mean - half, mean + half


@task(name="walk-forward evaluation and training", **CACHED)
def walk_forward(prices_uri: str, run_dir: str, models_root: str, *, lag: int = 20, horizon: int = 1,
                 folds: int = 3, epochs: int = 15, hidden: int = 32, cost: float = 0.0005,
                 model_name: str = "market", seed: int = 0, mc_samples: int = 0) -> dict:
    """Expanding-window folds by time: the LSTM and three baselines on the same windows of every fold;
    the model of the last fold is registered and promoted if it beats the champion on that fold."""
    prices = sources.read_checked_prices(prices_uri)
    bounds = windows.fold_boundaries(prices["date"].to_numpy(), folds)
    price, dates = prices["price"].to_numpy(dtype=float), prices["date"].to_numpy()
    per_fold, forecasts, model, scalers = [], [], None, {}
    for k in range(folds):
        fold = None  # the previous fold's features go before the next fold's are built
        fold = windows.fold_windows(prices, bounds[k], bounds[k + 1], lag=lag, horizon=horizon)
        train, test = windows.window_starts(fold.train), windows.window_starts(fold.test)
        if len(train) < 20 or len(test) == 0:
            raise BadInputError(f"fold {k + 1}: {len(train)} training and {len(test)} test windows; give more "
                                f"history per symbol or a smaller --lag ({lag}) or --folds ({folds})")
        fit, val = windows.validation_split(fold, train, dates)
        if len(fit) == 0:
            raise BadInputError(f"fold {k + 1}: every training target falls on one date, nothing is left to fit "
                                f"before the validation dates; give more history per symbol or fewer --folds ({folds})")
        validation_from = windows.target_dates(fold, val, dates).min()
        fold = None
        # the same windows, scaled on the rows before validation only, so early stopping sees unseen data
        fold = windows.fold_windows(prices, bounds[k], bounds[k + 1], lag=lag, horizon=horizon,
                                    scale_before=validation_from)
        y_test = fold.y[test]
        scale = float(fold.y[fit].std()) or 1.0
        ends = test + lag - 1
        order = np.argsort(dates[ends], kind="stable")
        seed_everything(seed + k)
        head_dropout = 0.1 if mc_samples > 1 else 0.0
        model = LSTMForecaster(fold.x.shape[2], hidden=hidden, head_dropout=head_dropout)
        history = train_model(model, WindowDataset(fold, fit, target_scale=scale),
                              WindowDataset(fold, val, target_scale=scale),
                              loss_fn=nn.MSELoss(), config=TrainConfig(epochs=epochs, seed=seed + k, batch_size=64))
        pred = predict_windows(model, fold, test) * scale
        test_series = windows.window_symbols(fold.test)

        def trading(forecast: np.ndarray, y=y_test, series=test_series) -> dict:
            return windows.strategy_gain(y, forecast, cost=cost, horizon=horizon, series=series)

        interval = {}
        if mc_samples > 1:
            val_residual = fold.y[val] - predict_windows(model, fold, val) * scale
            mean, spread = predict_windows_mc(model, fold, test, samples=mc_samples, seed=seed + k)
            lower, upper = forecast_interval(mean * scale, spread * scale, float(np.mean(val_residual**2)))
            interval = {"lower_90": lower, "upper_90": upper, "mc_std": spread * scale}
        base = windows.baseline_forecasts(fold, price, train=train, test=test)
        fold_metrics = {"fold": k + 1, "train_windows": len(train), "validation_windows": len(val),
                        "validation_from": str(validation_from)[:10],
                        "test_windows": len(test),
                        "test_from": str(bounds[k])[:10], "test_to": str(bounds[k + 1])[:10],
                        "lstm": {**regression_metrics(y_test, pred), **trading(pred)}}
        if interval:
            inside = (y_test >= interval["lower_90"]) & (y_test <= interval["upper_90"])
            fold_metrics["lstm"].update(interval_coverage_90=float(inside.mean()),
                                        interval_width_90=float(np.mean(interval["upper_90"] - interval["lower_90"])))
        for name, values in base.items():
            fold_metrics[name] = {**regression_metrics(y_test, values), **trading(values)}
        per_fold.append(fold_metrics)
        forecasts.append(pd.DataFrame({
            "fold": k + 1, "symbol": fold.symbols[windows.window_symbols(fold.test)], "date": dates[ends],
            "actual_return": y_test, "predicted_return": pred, "price": price[ends], **interval,
        }).iloc[order])
        scalers = {str(s): (m.tolist(), v.tolist()) for s, m, v in zip(fold.symbols, fold.mean, fold.std, strict=True)}
    summary = _mean_over_folds(per_fold)
    registry = ModelRegistry(models_root)
    champion = registry.champion(model_name)
    card = {"architecture": {"class": "LSTMForecaster", "kwargs": {"n_features": len(windows.FEATURES),
                                                                   "hidden": hidden,
                                                                   "head_dropout": head_dropout}},
            "parameters": {"lag": lag, "horizon": horizon, "folds": folds, "epochs": epochs, "target_scale": scale},
            "scalers": scalers, "metrics": summary["lstm"], "history": history,
            "validation": {"rmse": per_fold[-1]["lstm"]["rmse"]}}
    info = registry.register(model_name, model, card)
    champion_rmse = None
    if champion is not None and champion["parameters"].get("lag") == lag:
        champ = registry.load(model_name, champion["version"], LSTMForecaster(**champion["architecture"]["kwargs"]))
        champ_pred = predict_windows(champ, fold, test) * champion["parameters"]["target_scale"]
        champion_rmse = regression_metrics(y_test, champ_pred)["rmse"]
    promoted = (champion_rmse is None or per_fold[-1]["lstm"]["rmse"] < champion_rmse) and registry.promote(
        model_name, info["version"], expected=champion["version"] if champion else None)
    write_parquet(pd.concat(forecasts, ignore_index=True), _run(run_dir, "walk_forward.parquet"))
    result = {"model": {**info, "promoted": promoted, "trained": True,
                        "champion": champion["version"] if champion else None},
              "metrics": {**summary["lstm"], "folds": per_fold},
              "baselines": {k: v for k, v in summary.items() if k != "lstm"}, "history": history}
    write_json(result, _run(run_dir, "training.json"))
    return {"output": _run(run_dir, "training.json"), **{k: result[k] for k in ("model", "metrics", "baselines")}}


def _mean_over_folds(per_fold: list[dict]) -> dict:
    names = [k for k in per_fold[0] if isinstance(per_fold[0][k], dict)]
    return {name: {metric: float(np.mean([f[name][metric] for f in per_fold])) for metric in per_fold[0][name]}
            for name in names}


@task(name="forecast the next step", **CACHED)
def forecast_next(prices_uri: str, training_uri: str, run_dir: str, models_root: str) -> dict:
    """Next-step forecast per symbol from its latest window, as a return and as a price."""
    from tasks.store import read_json

    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["version"])
    model = registry.load(info["name"], info["version"], LSTMForecaster(**card["architecture"]["kwargs"]))
    lag = card["parameters"]["lag"]
    rows = []
    for symbol, group in sources.read_checked_prices(prices_uri).groupby("symbol", sort=True):
        if checks.PRE_SPLIT in symbol:  # the rows before a dropped split: that series has ended
            continue
        features, log_prices, dates = windows.symbol_features(group.reset_index(drop=True))
        if len(features) < lag or symbol not in card["scalers"]:
            continue
        mean, std = (np.asarray(v) for v in card["scalers"][symbol])
        x = ((features[-lag:] - mean) / std)[None].astype(np.float32)
        ret = float(predict(model, torch.as_tensor(x))[0] * card["parameters"]["target_scale"])
        rows.append({"symbol": symbol, "last_date": str(dates[-1])[:10], "last_price": float(np.exp(log_prices[-1])),
                     "predicted_log_return": ret, "predicted_price": float(np.exp(log_prices[-1] + ret)),
                     "horizon": card["parameters"]["horizon"]})
    return {"output": write_parquet(pd.DataFrame(rows), _run(run_dir, "forecasts.parquet"))}

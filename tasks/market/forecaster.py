"""The market forecaster's lifecycle: what ``walk_forward`` trains, tests and compares with.

``MarketSpec`` tells models/lifecycle.py how to walk the LSTM forward over expanding-window folds by time (each
fold's scalers fitted on its own training windows), score a champion on the last fold's test windows and measure
the baselines on the same windows; the helpers around it build the windows, predict and score forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from models.card import Architecture, ModelCard
from models.lifecycle import NO_HONEST_TEST, Decision, Fitted, honest_test, unit_keys
from models.market import LSTMForecaster
from models.registry import ModelRegistry
from models.train import TrainConfig, predict, predict_mc, seed_everything, train_model
from models.tuning import split_values, tuned
from tasks.errors import BadInputError
from tasks.market import windows
from tasks.metrics import regression_metrics

# --tune: the LSTM's width, the learning rate and weight decay
SEARCH = {"lr": ("log", 3e-4, 3e-3), "hidden": ("choice", [16, 32, 64]), "weight_decay": ("log", 1e-6, 1e-3)}


class WindowDataset(Dataset):
    """Windows of a fold drawn from its zero-copy view: a batch is gathered (float32) only when the loader asks,
    so no stacked copy of the training windows exists; the targets (one float32 per window, divided by
    ``target_scale``) are computed once, not per batch."""

    def __init__(self, fold: windows.FoldWindows, starts: np.ndarray, *, target_scale: float = 1.0) -> None:
        self.fold, self.starts = fold, starts
        self.targets = fold.y[starts] / np.float32(target_scale)

    def __len__(self) -> int:
        return len(self.starts)

    batched = True  # models.train.batches asks for a whole batch at once

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        picked = np.asarray(indices, dtype=np.intp)
        return torch.from_numpy(self.fold.x[self.starts[picked]]), torch.from_numpy(self.targets[picked])


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


@dataclass
class PreparedFold:
    """One walk-forward fold: its windows scaled on the rows before its validation dates, and the window starts
    of fit (training), validation (early stopping, later targets) and test (targets in [start, stop))."""

    fold: windows.FoldWindows
    train: np.ndarray
    fit: np.ndarray
    val: np.ndarray
    test: np.ndarray
    validation_from: np.datetime64
    start: np.datetime64
    stop: np.datetime64


def prepare_fold(prices: pd.DataFrame, dates: np.ndarray, start: np.datetime64, stop: np.datetime64, *, lag: int,
                 horizon: int, number: int, folds: int) -> PreparedFold:
    """The windows of one fold, split by time, scaled on the rows before validation so early stopping sees data
    the scalers never saw."""
    fold = windows.fold_windows(prices, start, stop, lag=lag, horizon=horizon)
    train, test = windows.window_starts(fold.train), windows.window_starts(fold.test)
    if len(train) < 20 or len(test) == 0:
        raise BadInputError(f"fold {number}: {len(train)} training and {len(test)} test windows; give more "
                            f"history per symbol or a smaller --lag ({lag}) or --folds ({folds})")
    fit, val = windows.validation_split(fold, train, dates)
    if len(fit) == 0:
        raise BadInputError(f"fold {number}: every training target falls on one date, nothing is left to fit "
                            f"before the validation dates; give more history per symbol or fewer --folds ({folds})")
    validation_from = windows.target_dates(fold, val, dates).min()
    fold = None  # the unscaled fold goes before the rescaled one is built
    fold = windows.fold_windows(prices, start, stop, lag=lag, horizon=horizon, scale_before=validation_from)
    return PreparedFold(fold, train, fit, val, test, validation_from, start, stop)


@dataclass
class MarketSettings:
    lag: int
    horizon: int
    folds: int
    epochs: int
    hidden: int
    cost: float
    seed: int
    mc_samples: int
    tune: int = 0
    values: dict | None = None  # chosen by --tune: LSTM arguments and training-loop fields


class MarketSpec:
    """The market domain for the model lifecycle: windows of the last walk-forward fold as the units (keyed by
    symbol and target date), the LSTM walked forward over every fold as the challenger (the last fold's model is
    the one kept), compared by RMSE with each model's own scalers and target scale."""

    def __init__(self, prices: pd.DataFrame, settings: MarketSettings) -> None:
        self.prices, self.settings = prices, settings
        self.dates = prices["date"].to_numpy()
        self.price = prices["price"].to_numpy(dtype=float)
        self.bounds = windows.fold_boundaries(self.dates, settings.folds)
        k = settings.folds - 1
        self.last = prepare_fold(prices, self.dates, self.bounds[k], self.bounds[k + 1], lag=settings.lag,
                                 horizon=settings.horizon, number=settings.folds, folds=settings.folds)
        last = self.last
        self.starts = np.concatenate([last.fit, last.val, last.test])
        self.split = np.repeat([0, 1, 2], [len(last.fit), len(last.val), len(last.test)]).astype(np.uint8)
        self.symbol = np.searchsorted(last.fold.rows[:, 0], self.starts, side="right") - 1

    def keys(self) -> np.ndarray:
        """A unit per window of the last fold: its symbol and target date."""
        when = windows.target_dates(self.last.fold, self.starts, self.dates).astype("datetime64[s]").astype(str)
        return unit_keys(f"{name}|{day}" for name, day in zip(self.last.fold.symbols[self.symbol], when, strict=True))

    def mismatch(self, card: ModelCard) -> str | None:
        """Same lag and horizon, and a scaler for every symbol the run forecasts."""
        params, s = card.parameters, self.settings
        if (params.get("lag"), params.get("horizon")) != (s.lag, s.horizon):
            options = f"--lag {params.get('lag')} --horizon {params.get('horizon')}"
            return f"it forecasts with {options} (this run: --lag {s.lag} --horizon {s.horizon}); run with {options}"
        missing = [str(name) for name in self.last.fold.symbols if str(name) not in (card.scalers or {})]
        if missing:
            return (f"it has no scaler for {', '.join(missing)} (it was trained on {', '.join(card.scalers or {})}); "
                    "forecast those symbols, or train a model on these")
        return None

    def inputs(self, card: ModelCard, units: np.ndarray) -> np.ndarray:
        """The windows at ``units`` scaled with the card's own per-symbol scalers."""
        fold, symbol = self.last.fold, self.symbol[units]
        raw = fold.x[self.starts[units]] * fold.std[symbol][:, None, :] + fold.mean[symbol][:, None, :]
        names = fold.symbols[symbol]
        mean = np.array([card.scalers[str(n)][0] for n in names]).reshape(-1, 1, raw.shape[2])
        std = np.array([card.scalers[str(n)][1] for n in names]).reshape(-1, 1, raw.shape[2])
        return ((raw - mean) / std).astype(np.float32)

    def forecast(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> np.ndarray:
        return predict(model, torch.as_tensor(self.inputs(card, units))) * card.parameters["target_scale"]

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        y = self.last.fold.y[self.starts[units]]
        return -regression_metrics(y, self.forecast(model, card, units))["rmse"]

    def validation_rmse(self, values: dict) -> float:
        """RMSE on the last fold's validation windows of an LSTM trained on its fit windows with ``values``."""
        s = replace(self.settings, values=values)
        model, _, scale = fit_fold(self.last, s.folds - 1, s, self.dates)
        val = self.last.val
        return regression_metrics(self.last.fold.y[val], predict_windows(model, self.last.fold, val) * scale)["rmse"]

    def fit(self) -> Fitted:
        values, tuning = tuned(self.validation_rmse, SEARCH, trials=self.settings.tune, seed=self.settings.seed,
                               metric="validation RMSE", direction="minimize")
        s, per_fold, forecasts = replace(self.settings, values=values), [], []
        for k in range(s.folds):
            prepared = self.last if k == s.folds - 1 else prepare_fold(
                self.prices, self.dates, self.bounds[k], self.bounds[k + 1], lag=s.lag, horizon=s.horizon,
                number=k + 1, folds=s.folds)
            model, history, scale, metrics, frame = walk_fold(prepared, k, self.price, self.dates, s)
            per_fold.append(metrics)
            forecasts.append(frame)
        fold = self.last.fold
        arch = Architecture(name="LSTMForecaster", kwargs=_lstm_kwargs(s))
        card = ModelCard(
            architecture=arch, metrics=mean_over_folds(per_fold)["lstm"], history=history,
            parameters={"lag": s.lag, "horizon": s.horizon, "folds": s.folds, "epochs": s.epochs,
                        "target_scale": scale},
            scalers={str(n): (m.tolist(), v.tolist()) for n, m, v in zip(fold.symbols, fold.mean, fold.std,
                                                                         strict=True)},
            data={"trained_until": str(self.last.start)[:10]}, tuning=tuning)
        return Fitted(model, card, outputs={"per_fold": per_fold, "forecasts": pd.concat(forecasts, ignore_index=True)})


def forecast_metrics(actual: np.ndarray, forecast: np.ndarray, series: np.ndarray, s: MarketSettings) -> dict:
    """RMSE, MAE and directional accuracy, and the long/flat strategy against buy-and-hold, of a forecast."""
    return {**regression_metrics(actual, forecast),
            **windows.strategy_gain(actual, forecast, cost=s.cost, horizon=s.horizon, series=series)}


SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def shrink_on_validation(actual: np.ndarray, forecast: np.ndarray, dates: np.ndarray | None = None) -> float:
    """How much of the network's forecast to keep, chosen on the validation windows: daily returns are mostly
    noise, and a forecast scaled towards zero loses less where the network learnt little (0 forecasts no change,
    as persistence does). A share is kept only when its gain over no change is clear of the noise (its mean
    squared-error reduction over twice its standard error, the Diebold-Mariano test at about 5%); among those,
    the one with the lowest validation error. A gain on the validation windows that chance explains would be
    lost on the test windows. With the windows' target ``dates``, the gains are first averaged per date: symbols
    move together on a day, so their windows are not independent evidence."""
    actual, forecast = np.asarray(actual, dtype=float), np.asarray(forecast, dtype=float)
    day = np.arange(len(actual)) if dates is None else np.unique(dates, return_inverse=True)[1].ravel()
    if day.max(initial=0) < 1:  # fewer than two dates: nothing to tell a gain from noise with
        return 0.0
    gains = {shrink: np.bincount(day, actual**2 - (actual - shrink * forecast) ** 2) / np.bincount(day)
             for shrink in SHRINKS}
    clear = [shrink for shrink in SHRINKS
             if shrink == 0.0 or gains[shrink].mean() > 2 * gains[shrink].std(ddof=1) / np.sqrt(len(gains[shrink]))]
    return max(clear, key=lambda shrink: (gains[shrink].mean(), -shrink))


def _lstm_kwargs(s: MarketSettings) -> dict:
    kwargs = {"n_features": len(windows.FEATURES), "hidden": s.hidden, "head_dropout": 0.1 if s.mc_samples > 1 else 0.0}
    return kwargs | split_values(s.values)[0]


def fit_fold(prepared: PreparedFold, k: int, s: MarketSettings, dates: np.ndarray) -> tuple[nn.Module, dict, float]:
    """The LSTM of one fold trained on its fit windows with early stopping on its validation windows, and the
    target scale, shrunk on validation: (model, history, scale)."""
    fold, fit, val = prepared.fold, prepared.fit, prepared.val
    scale = float(fold.y[fit].std()) or 1.0
    seed_everything(s.seed + k)
    model = LSTMForecaster(**_lstm_kwargs(s))
    history = train_model(model, WindowDataset(fold, fit, target_scale=scale),
                          WindowDataset(fold, val, target_scale=scale), loss_fn=nn.MSELoss(),
                          config=TrainConfig(epochs=s.epochs, seed=s.seed + k, batch_size=64,
                                             **split_values(s.values)[1]))
    history["shrink"] = shrink_on_validation(fold.y[val], predict_windows(model, fold, val) * scale,
                                             windows.target_dates(fold, val, dates))
    return model, history, scale * history["shrink"]


def walk_fold(prepared: PreparedFold, k: int, price: np.ndarray, dates: np.ndarray,
              s: MarketSettings) -> tuple[nn.Module, dict, float, dict, pd.DataFrame]:
    """Train the LSTM of one fold (see fit_fold) and measure it and the baselines on the fold's test windows:
    (model, history, target scale, fold metrics, test forecasts)."""
    fold, val, test = prepared.fold, prepared.val, prepared.test
    y_test = fold.y[test]
    ends = test + s.lag - 1
    model, history, scale = fit_fold(prepared, k, s, dates)
    pred = predict_windows(model, fold, test) * scale
    series = windows.window_symbols(fold.test)

    interval = {}
    if s.mc_samples > 1:
        val_residual = fold.y[val] - predict_windows(model, fold, val) * scale
        mean, spread = predict_windows_mc(model, fold, test, samples=s.mc_samples, seed=s.seed + k)
        lower, upper = forecast_interval(mean * scale, spread * scale, float(np.mean(val_residual**2)))
        interval = {"lower_90": lower, "upper_90": upper, "mc_std": spread * scale}
    metrics = {"fold": k + 1, "shrink": history["shrink"], "train_windows": len(prepared.train),
               "validation_windows": len(val),
               "validation_from": str(prepared.validation_from)[:10], "test_windows": len(test),
               "test_from": str(prepared.start)[:10], "test_to": str(prepared.stop)[:10],
               "lstm": forecast_metrics(y_test, pred, series, s)}
    if interval:
        inside = (y_test >= interval["lower_90"]) & (y_test <= interval["upper_90"])
        metrics["lstm"].update(interval_coverage_90=float(inside.mean()),
                               interval_width_90=float(np.mean(interval["upper_90"] - interval["lower_90"])))
    for name, values in windows.baseline_forecasts(fold, price, train=prepared.train, test=test).items():
        metrics[name] = forecast_metrics(y_test, values, series, s)
    frame = pd.DataFrame({"fold": k + 1, "symbol": fold.symbols[series], "date": dates[ends], "actual_return": y_test,
                          "predicted_return": pred, "price": price[ends], **interval})
    return model, history, scale, metrics, frame.iloc[np.argsort(dates[ends], kind="stable")]


def champion_metrics(spec: MarketSpec, decision: Decision, registry: ModelRegistry,
                      keys: np.ndarray) -> tuple[dict, dict, pd.DataFrame]:
    """The champion and the baselines on the last fold's test windows the champion never saw."""
    units = honest_test(decision, registry, keys, np.flatnonzero(spec.split == 2))
    if len(units) == 0:
        return {"note": NO_HONEST_TEST}, {}, pd.DataFrame()
    last, s = spec.last, spec.settings
    starts, y = spec.starts[units], last.fold.y[spec.starts[units]]
    pred = spec.forecast(decision.model, decision.scoring, units)
    series = spec.symbol[units]

    baselines = windows.baseline_forecasts(last.fold, spec.price, train=last.train, test=starts)
    ends = starts + s.lag - 1
    frame = pd.DataFrame({"fold": s.folds, "symbol": last.fold.symbols[series], "date": spec.dates[ends],
                          "actual_return": y, "predicted_return": pred, "price": spec.price[ends]})
    return ({**forecast_metrics(y, pred, series, s), "test_records": int(len(units))},
            {k: forecast_metrics(y, v, series, s) for k, v in baselines.items()},
            frame.iloc[np.argsort(spec.dates[ends], kind="stable")])


def mean_over_folds(per_fold: list[dict]) -> dict:
    names = [k for k in per_fold[0] if isinstance(per_fold[0][k], dict)]
    return {name: {metric: float(np.mean([f[name][metric] for f in per_fold])) for metric in per_fold[0][name]}
            for name in names}

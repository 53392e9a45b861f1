"""``--tune N``: N trials of a domain's small search space with Optuna, each scored on the validation split.

A space maps a name to ``("log", low, high)``, ``("float", low, high)`` or ``("choice", [values])``. Names in
TRAIN_KEYS go to the training loop (TrainConfig); the others are keyword arguments of the network.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

TUNE = ("trials of a small search space (learning rate, network size, dropout) with Optuna, each scored on the "
        "validation split; the best values train the model (0: off, the defaults)")
TRAIN_KEYS = ("lr", "weight_decay", "batch_size")
Space = dict[str, tuple]


def suggest(trial, space: Space) -> dict:
    """One trial's values from an Optuna trial."""
    values = {}
    for name, (kind, *bounds) in space.items():
        if kind == "log":
            values[name] = trial.suggest_float(name, *bounds, log=True)
        elif kind == "float":
            values[name] = trial.suggest_float(name, *bounds)
        elif kind == "choice":
            values[name] = trial.suggest_categorical(name, bounds[0])
        else:
            raise ValueError(f"unknown kind {kind!r} of search dimension {name!r}")
    return values


def split_values(values: dict | None) -> tuple[dict, dict]:
    """(network keyword arguments, TrainConfig fields) of a trial's values."""
    values = values or {}
    return ({k: v for k, v in values.items() if k not in TRAIN_KEYS},
            {k: v for k, v in values.items() if k in TRAIN_KEYS})


def tuned(objective: Callable[[dict], float], space: Space, *, trials: int, seed: int,
          metric: str, direction: str = "maximize") -> tuple[dict, dict | None]:
    """(chosen values, the tuning record) with ``trials`` > 0; ({}, None), the defaults, without."""
    if not trials:
        return {}, None
    record = tune(objective, space, trials=trials, seed=seed, metric=metric, direction=direction)
    return record["chosen"], record


def tune(objective: Callable[[dict], float], space: Space, *, trials: int, seed: int, metric: str,
         direction: str = "maximize") -> dict:
    """Run ``trials`` trials of ``objective`` (values -> validation score) with Optuna's seeded TPE sampler and
    return the record a card and a report keep: the metric, every trial's values, score and seconds, and the
    chosen values (the best trial's)."""
    import optuna  # imported only when a run tunes

    optuna.logging.set_verbosity(logging.WARNING)
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    rows: list[dict] = []

    def run(trial) -> float:
        values = suggest(trial, space)
        started = time.perf_counter()
        score = float(objective(values))
        rows.append({"trial": trial.number + 1, "values": values, "score": score,
                     "seconds": round(time.perf_counter() - started, 2)})
        return score

    study.optimize(run, n_trials=trials)
    return {"metric": metric, "split": "validation", "direction": direction, "trials": rows,
            "chosen": dict(study.best_params), "best_score": float(study.best_value),
            "space": {name: list(dim) for name, dim in space.items()}}

"""--tune: Optuna's trials over a domain's search space, recorded for the card and the report."""

from __future__ import annotations

import math

import pytest

from models.tuning import split_values, tune, tuned

SPACE = {"lr": ("log", 1e-4, 1e-1), "width": ("choice", [8, 16, 32]), "dropout": ("float", 0.0, 0.5)}


def peak_at_1e2_16(values: dict) -> float:
    return -(math.log10(values["lr"]) + 2) ** 2 - abs(values["width"] - 16) / 8 - values["dropout"]


def test_the_search_moves_towards_the_best_values_and_records_every_trial() -> None:
    record = tune(peak_at_1e2_16, SPACE, trials=30, seed=0, metric="toy")
    assert len(record["trials"]) == 30 and [t["trial"] for t in record["trials"]] == list(range(1, 31))
    assert record["best_score"] == max(t["score"] for t in record["trials"])
    chosen = record["chosen"]
    assert abs(math.log10(chosen["lr"]) + 2) < 0.5 and chosen["width"] == 16 and chosen["dropout"] < 0.15
    assert record["split"] == "validation" and set(record["space"]) == set(SPACE)


def test_minimizing_picks_the_lowest_score() -> None:
    record = tune(lambda v: v["dropout"], {"dropout": ("float", 0.0, 1.0)}, trials=8, seed=1, metric="rmse",
                  direction="minimize")
    assert record["best_score"] == min(t["score"] for t in record["trials"])


def test_the_same_seed_tries_the_same_values() -> None:
    first = tune(peak_at_1e2_16, SPACE, trials=5, seed=3, metric="toy")["trials"]
    again = tune(peak_at_1e2_16, SPACE, trials=5, seed=3, metric="toy")["trials"]
    assert [t["values"] for t in first] == [t["values"] for t in again]


def test_no_trials_means_the_defaults_and_no_training_spent() -> None:
    def never(values: dict) -> float:
        raise AssertionError("no trial should run")

    assert tuned(never, SPACE, trials=0, seed=0, metric="toy") == ({}, None)


def test_training_loop_fields_are_told_apart_from_network_arguments() -> None:
    assert split_values({"lr": 1e-3, "width": 16, "weight_decay": 0.0}) == ({"width": 16},
                                                                             {"lr": 1e-3, "weight_decay": 0.0})
    assert split_values(None) == ({}, {})


def test_an_unknown_kind_of_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'grid'"):
        tune(lambda v: 0.0, {"x": ("grid", [1])}, trials=1, seed=0, metric="toy")

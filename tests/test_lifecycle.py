"""The one model lifecycle with a toy domain: train or reuse, compare on units the champion never saw,
promote, and score with the champion after the decision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.card import Architecture, ModelCard
from models.lifecycle import TEST, TRAIN, VAL, Fitted, run_lifecycle, trained_on, unit_keys, unseen_by
from models.market import LSTMForecaster
from models.registry import ModelRegistry
from tasks.errors import BadInputError

TINY = Architecture(name="LSTMForecaster", kwargs={"n_features": 1, "hidden": 1})


class ToySpec:
    """A tiny model whose score is its output bias; records which units each score used."""

    def __init__(self, strength: float, *, kind: str = "toy") -> None:
        self.strength, self.kind, self.scored = strength, kind, []

    def mismatch(self, card: ModelCard) -> str | None:
        kind = card.parameters.get("kind")
        return None if kind == self.kind else f"it is a {kind} model, run with --kind {kind}"

    def fit(self) -> Fitted:
        model = LSTMForecaster(**TINY.kwargs)
        with torch.no_grad():
            model.head.bias.fill_(self.strength)
        return Fitted(model, ModelCard(architecture=TINY, parameters={"kind": self.kind}))

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        self.scored.append((card.version, units.tolist()))
        return float(model.head.bias.detach())


def units(n: int = 20, *, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keys = unit_keys(f"record {i}" for i in range(first, first + n))
    split = np.array([TRAIN] * (n - 8) + [VAL] * 4 + [TEST] * 4)
    return keys, split


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path)


def run(spec: ToySpec, registry: ModelRegistry, mode: str = "auto", *, first: int = 0):
    keys, split = units(first=first)
    return run_lifecycle(spec, registry, "m", mode=mode, keys=keys, split=split, no_champion="no champion: train")


class TestLifecycle:
    def test_the_first_challenger_is_promoted_and_scores(self, registry: ModelRegistry) -> None:
        decision = run(ToySpec(0.5), registry)
        assert decision.promoted and decision.scoring.version == decision.trained.version == "v1"
        assert decision.summary()["scored_with"] == "v1"
        keys, split = units()
        assert set(trained_on(registry, decision.trained).tolist()) == set(keys[split != TEST].tolist())

    def test_auto_reuses_a_compatible_champion_without_training(self, registry: ModelRegistry) -> None:
        run(ToySpec(0.5), registry)
        decision = run(ToySpec(0.9), registry)
        assert decision.trained is None and decision.scoring.version == "v1" and not decision.promoted
        assert registry.versions("m") == ["v1"]

    def test_an_incompatible_champion_is_replaced(self, registry: ModelRegistry) -> None:
        run(ToySpec(0.5), registry)
        decision = run(ToySpec(0.1, kind="other"), registry)
        assert decision.promoted and decision.scoring.version == "v2"

    def test_never_without_a_champion_names_the_way_out(self, registry: ModelRegistry) -> None:
        with pytest.raises(BadInputError, match="no champion: train"):
            run(ToySpec(0.5), registry, "never")

    def test_on_the_same_data_nothing_is_left_to_compare_and_the_champion_stays(self, registry: ModelRegistry):
        run(ToySpec(0.5), registry)
        spec = ToySpec(0.9)
        decision = run(spec, registry, "always")
        assert not decision.promoted and decision.comparison["units"] == 0 and spec.scored == []
        assert "cannot be compared honestly" in decision.comparison["decision"]
        assert decision.scoring.version == "v1"  # outputs come from the champion, not the run's new model

    def test_new_records_are_compared_on_the_validation_units_the_champion_never_saw(self, registry):
        run(ToySpec(0.5), registry)
        spec = ToySpec(0.9)
        decision = run(spec, registry, "always", first=10)  # records 10..29: 10..19 were v1's
        keys, split = units(first=10)
        fresh = np.flatnonzero((split == VAL) & unseen_by(registry, registry.card("m", "v1"), keys))
        assert [units_ for _, units_ in spec.scored] == [fresh.tolist()] * 2 and len(fresh) == 4
        assert decision.promoted and decision.comparison["units"] == 4 and decision.scoring.version == "v2"

    def test_a_losing_challenger_is_registered_but_the_champion_scores(self, registry: ModelRegistry) -> None:
        run(ToySpec(0.5), registry)
        decision = run(ToySpec(0.1), registry, "always", first=10)
        assert not decision.promoted and decision.trained.version == "v2"
        assert decision.scoring.version == "v1" and float(decision.model.head.bias.detach()) == pytest.approx(0.5)
        assert decision.summary()["version"] == "v2" and decision.summary()["scored_with"] == "v1"

    def test_a_champion_from_before_training_keys_is_compared_on_validation(self, registry: ModelRegistry) -> None:
        first = run(ToySpec(0.5), registry).trained
        (Path(first.uri) / "trained_on.npy").unlink()
        decision = run(ToySpec(0.9), registry, "always")
        assert decision.promoted and decision.comparison["units"] == 4
        assert "does not say what it trained on" in decision.comparison["on"]


def test_every_model_is_rebuilt_from_its_card_through_one_table() -> None:
    from models.architectures import ARCHITECTURES, build

    assert set(ARCHITECTURES) == {"UNet", "PixelFCN", "PosCNN1D", "SeqCNN1D", "KmerCNN2D", "HybridTextCNN",
                                 "TextCNN", "LSTMForecaster"}
    assert isinstance(build(TINY), LSTMForecaster)
    assert isinstance(build(ModelCard(architecture=TINY)), LSTMForecaster)
    with pytest.raises(BadInputError, match="model m v1: unknown architecture 'GPT'"):
        build(ModelCard(name="m", version="v1", architecture=Architecture(name="GPT")))

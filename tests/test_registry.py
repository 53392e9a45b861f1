"""Model versions with cards, champion promotion and weights-only loading, in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from models.registry import ModelRegistry, challenger_wins


def small_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path)


class TestModelRegistry:
    def test_root_follows_data_root(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_DATA", str(tmp_path / "env"))
        assert ModelRegistry().root == str((tmp_path / "env" / "models").resolve())
        assert ModelRegistry(tmp_path / "arg").root == str((tmp_path / "arg" / "models").resolve())

    def test_register_twice_gives_v1_and_v2_with_cards(self, registry: ModelRegistry) -> None:
        first = registry.register("genome_cnn", small_model(0), {"metrics": {"macro_f1": 0.7}})
        second = registry.register("genome_cnn", small_model(1), {"metrics": {"macro_f1": 0.8}})
        assert (first["version"], second["version"]) == ("v1", "v2")
        assert first == {"name": "genome_cnn", "version": "v1", "uri": str(Path(registry.root) / "genome_cnn" / "v1")}
        card = registry.card("genome_cnn", "v2")
        assert card["metrics"] == {"macro_f1": 0.8}
        assert (card["name"], card["version"], card["uri"]) == ("genome_cnn", "v2", second["uri"])
        assert card["created"]
        assert (Path(first["uri"]) / "weights.pt").is_file()

    def test_versions_are_per_name(self, registry: ModelRegistry) -> None:
        registry.register("a", small_model(0), {})
        assert registry.register("b", small_model(0), {})["version"] == "v1"

    def test_champion_is_none_before_promotion(self, registry: ModelRegistry) -> None:
        assert registry.champion("genome_cnn") is None
        registry.register("genome_cnn", small_model(0), {})
        assert registry.champion("genome_cnn") is None

    def test_promote_then_champion_returns_that_card(self, registry: ModelRegistry) -> None:
        registry.register("genome_cnn", small_model(0), {"metrics": {"macro_f1": 0.7}})
        registry.register("genome_cnn", small_model(1), {"metrics": {"macro_f1": 0.8}})
        registry.promote("genome_cnn", "v2")
        assert registry.champion("genome_cnn") == registry.card("genome_cnn", "v2")
        registry.promote("genome_cnn", "v1")
        assert registry.champion("genome_cnn")["version"] == "v1"

    def test_load_restores_identical_weights_into_a_fresh_model(self, registry: ModelRegistry) -> None:
        trained = small_model(0)
        registry.register("genome_cnn", trained, {})
        fresh = small_model(99)
        assert not torch.equal(fresh[0].weight, trained[0].weight)
        loaded = registry.load("genome_cnn", "v1", fresh)
        assert loaded is fresh
        assert not loaded.training
        for (name, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items(), strict=True):
            assert torch.equal(a, b), name

    def test_load_refuses_a_model_of_another_shape(self, registry: ModelRegistry) -> None:
        registry.register("genome_cnn", small_model(0), {})
        with pytest.raises(RuntimeError, match="size mismatch"):
            registry.load("genome_cnn", "v1", nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)))

    def test_extra_files_are_written(self, registry: ModelRegistry) -> None:
        ref = registry.register("genome_cnn", small_model(0), {},
                                extra_files={"reference.parquet": b"PAR1", "vocab.json": b"{}"})
        folder = Path(ref["uri"])
        assert (folder / "reference.parquet").read_bytes() == b"PAR1"
        assert (folder / "vocab.json").read_bytes() == b"{}"
        assert sorted(p.name for p in folder.iterdir()) == [".claimed", "card.json", "reference.parquet", "vocab.json",
                                                           "weights.pt"]

    def test_card_with_nan_metric_registers(self, registry: ModelRegistry) -> None:
        ref = registry.register("genome_cnn", small_model(0), {"metrics": {"roc_auc": float("nan")}})
        assert registry.card("genome_cnn", ref["version"])["metrics"] == {"roc_auc": None}


class TestChallengerWins:
    def test_wins_when_there_is_no_champion(self) -> None:
        assert challenger_wins(0.1, None) is True

    def test_must_beat_not_tie(self) -> None:
        assert challenger_wins(0.81, 0.8) is True
        assert challenger_wins(0.8, 0.8) is False
        assert challenger_wins(0.79, 0.8) is False

    def test_min_gain(self) -> None:
        assert challenger_wins(0.84, 0.8, min_gain=0.05) is False
        assert challenger_wins(0.86, 0.8, min_gain=0.05) is True

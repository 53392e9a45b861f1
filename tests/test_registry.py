"""Model versions with cards, champion promotion and weights-only loading, in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from models.card import Architecture, ModelCard
from models.registry import ModelRegistry, RegistryError
from tasks.errors import BadInputError


def a_card(**fields: object) -> ModelCard:
    return ModelCard(architecture=Architecture(name="Sequential"), **fields)


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
        first = registry.register("genome_cnn", small_model(0), a_card(metrics={"macro_f1": 0.7}))
        second = registry.register("genome_cnn", small_model(1), a_card(metrics={"macro_f1": 0.8}))
        assert (first.version, second.version) == ("v1", "v2")
        assert (first.name, first.uri) == ("genome_cnn", str(Path(registry.root) / "genome_cnn" / "v1"))
        card = registry.card("genome_cnn", "v2")
        assert card.metrics == {"macro_f1": 0.8}
        assert (card.name, card.version, card.uri) == ("genome_cnn", "v2", second.uri)
        assert card.created and card.tessera != "unknown"
        assert (Path(first.uri) / "weights.pt").is_file()

    def test_versions_are_per_name(self, registry: ModelRegistry) -> None:
        registry.register("a", small_model(0), a_card())
        assert registry.register("b", small_model(0), a_card()).version == "v1"

    def test_champion_is_none_before_promotion(self, registry: ModelRegistry) -> None:
        assert registry.champion("genome_cnn") is None
        registry.register("genome_cnn", small_model(0), a_card())
        assert registry.champion("genome_cnn") is None

    def test_promote_then_champion_returns_that_card(self, registry: ModelRegistry) -> None:
        registry.register("genome_cnn", small_model(0), a_card(metrics={"macro_f1": 0.7}))
        registry.register("genome_cnn", small_model(1), a_card(metrics={"macro_f1": 0.8}))
        registry.promote("genome_cnn", "v2")
        assert registry.champion("genome_cnn") == registry.card("genome_cnn", "v2")
        registry.promote("genome_cnn", "v1")
        assert registry.champion("genome_cnn").version == "v1"

    def test_load_restores_identical_weights_into_a_fresh_model(self, registry: ModelRegistry) -> None:
        trained = small_model(0)
        registry.register("genome_cnn", trained, a_card())
        fresh = small_model(99)
        assert not torch.equal(fresh[0].weight, trained[0].weight)
        loaded = registry.load("genome_cnn", "v1", fresh)
        assert loaded is fresh
        assert not loaded.training
        for (name, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items(), strict=True):
            assert torch.equal(a, b), name

    def test_load_refuses_a_model_of_another_shape(self, registry: ModelRegistry) -> None:
        registry.register("genome_cnn", small_model(0), a_card())
        with pytest.raises(RegistryError, match="weights cannot be loaded .*size mismatch"):
            registry.load("genome_cnn", "v1", nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2)))

    def test_extra_files_are_written(self, registry: ModelRegistry) -> None:
        ref = registry.register("genome_cnn", small_model(0), a_card(),
                                extra_files={"reference.parquet": b"PAR1", "vocab.json": b"{}"})
        folder = Path(ref.uri)
        assert (folder / "reference.parquet").read_bytes() == b"PAR1"
        assert (folder / "vocab.json").read_bytes() == b"{}"
        assert sorted(p.name for p in folder.iterdir()) == [".claimed", "card.json", "reference.parquet", "vocab.json",
                                                           "weights.pt"]

    def test_card_with_nan_metric_registers(self, registry: ModelRegistry) -> None:
        ref = registry.register("genome_cnn", small_model(0), a_card(metrics={"roc_auc": float("nan")}))
        assert registry.card("genome_cnn", ref.version).metrics == {"roc_auc": None}


class TestRegistrySafety:
    @pytest.mark.parametrize("name", ["../../escaped", "/abs", ".hidden", "a/b", "", "x" * 129, ".."])
    def test_a_name_that_is_not_one_path_part_is_bad_input(self, registry: ModelRegistry, name: str) -> None:
        with pytest.raises(BadInputError, match="model name .* is not a valid name"):
            registry.register(name, small_model(0), a_card())
        with pytest.raises(BadInputError, match="not a valid name"):
            registry.card("genome_cnn", name)

    def test_truncated_weights_name_the_file_and_the_way_back(self, registry: ModelRegistry) -> None:
        info = registry.register("genome_cnn", small_model(0), a_card())
        weights = Path(info.uri) / "weights.pt"
        weights.write_bytes(weights.read_bytes()[:100])
        with pytest.raises(RegistryError, match=r"weights\.pt: model weights do not match their card's checksum.*"
                                                r"tessera models promote genome_cnn VERSION.*--train always") as info_:
            registry.load("genome_cnn", "v1", small_model(1))
        assert info_.value.exit_code == 2

    def test_missing_weights_and_a_broken_card_name_the_file(self, registry: ModelRegistry) -> None:
        info = registry.register("genome_cnn", small_model(0), a_card())
        (Path(info.uri) / "weights.pt").unlink()
        with pytest.raises(RegistryError, match=r"weights\.pt: model weights not found"):
            registry.load("genome_cnn", "v1", small_model(1))
        (Path(info.uri) / "card.json").write_text("{broken")
        with pytest.raises(RegistryError, match=r"card\.json: model card is not valid JSON"):
            registry.card("genome_cnn", "v1")
        (Path(info.uri) / "card.json").write_text('{"architecture": {"kwargs": {}}}')
        with pytest.raises(RegistryError, match=r"card\.json: model card is not a valid card \(architecture\.class: "
                                                r"Field required\); promote an earlier version"):
            registry.card("genome_cnn", "v1")

    def test_a_promotion_against_a_stale_champion_loses(self, registry: ModelRegistry) -> None:
        for seed in range(3):
            registry.register("m", small_model(seed), a_card())
        assert registry.promote("m", "v1", expected=None)
        # two runs both compared against v1; the first to promote wins, the second sees v2 and does not overwrite
        assert registry.promote("m", "v2", expected="v1")
        assert not registry.promote("m", "v3", expected="v1")
        assert registry.champion_version("m") == "v2"
        assert registry.promote("m", "v1")  # a person's promotion needs no expectation
        assert registry.champion_version("m") == "v1"

    def test_concurrent_promotions_never_both_win(self, registry: ModelRegistry) -> None:
        from concurrent.futures import ThreadPoolExecutor

        for seed in range(8):
            registry.register("m", small_model(seed), a_card())
        with ThreadPoolExecutor(8) as pool:
            won = list(pool.map(lambda v: registry.promote("m", f"v{v}", expected=None), range(1, 9)))
        assert sum(won) == 1 and registry.champion_version("m") == f"v{won.index(True) + 1}"

    def test_a_registry_from_before_promotion_records_keeps_its_champion(self, registry: ModelRegistry) -> None:
        registry.register("m", small_model(0), a_card())
        registry.register("m", small_model(1), a_card())
        (Path(registry.root) / "m" / "champion.json").write_text('{"version": "v1"}')
        assert registry.champion("m").version == "v1"
        assert registry.promote("m", "v2", expected="v1") and registry.champion_version("m") == "v2"

    def test_names_and_versions(self, registry: ModelRegistry) -> None:
        for name in ("b", "a", "a"):
            registry.register(name, small_model(0), a_card())
        assert registry.names() == ["a", "b"] and registry.versions("a") == ["v1", "v2"]


class TestNamesWhereTheyEnter:
    @pytest.mark.parametrize("args", [["--run-id", "../../../../x"], ["--run-id", "/tmp/abs"],
                                      ["--model-name", "../../escaped"], ["--run-id", ".hidden"]])
    def test_the_cli_refuses_a_path_with_exit_2_and_one_line(self, args: list[str], tmp_path: Path, capsys) -> None:
        from flows.cli import main

        with pytest.raises(SystemExit) as info:
            main(["run", "market", "--out", str(tmp_path / "data"), *args])
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is not a valid name" in err[0] and args[1] in err[0]
        assert not (tmp_path / "data").exists()

    def test_the_python_api_and_the_parameter_models_refuse_it_too(self, tmp_path: Path) -> None:
        from pydantic import ValidationError

        from flows.params import GenomeParams, MarketParams
        from tasks.runs import RunRecord

        with pytest.raises(BadInputError, match="run id '../x' is not a valid name"):
            RunRecord.start("market", {}, out=str(tmp_path), run_id="../x")
        with pytest.raises(ValidationError):
            MarketParams(run_id="../../x")
        with pytest.raises(ValidationError):
            GenomeParams(model_name="../escaped")
        assert MarketParams(run_id="20261203T150406Z-b9ddbe", model_name="prices.v2").run_id


class TestModelsCommand:
    def test_list_show_and_promote_an_earlier_version(self, registry: ModelRegistry, capsys) -> None:
        from flows.cli import main

        out = str(Path(registry.root).parent)
        registry.register("m", small_model(0), a_card(metrics={"accuracy": 0.9, "macro_f1": 0.8}))
        registry.register("m", small_model(1), a_card(metrics={"accuracy": 0.7, "macro_f1": 0.6}))
        registry.promote("m", "v2")
        assert main(["models", "list", "--out", out]) == 0
        listed = capsys.readouterr().out.splitlines()
        assert listed[0] == "m (champion v2)" and listed[2].lstrip().startswith("* v2")
        assert "accuracy 0.900, macro F1 0.800" in listed[1]
        assert main(["models", "promote", "m", "v1", "--out", out]) == 0
        assert registry.champion_version("m") == "v1"
        capsys.readouterr()
        assert main(["models", "show", "m", "--out", out]) == 0
        assert '"version": "v1"' in capsys.readouterr().out
        assert main(["models", "promote", "m", "v7", "--out", out]) == 2
        assert "v7/card.json: model card not found" in capsys.readouterr().err

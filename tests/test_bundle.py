"""models/bundle.py and ``--bundle``: a model exported from one data root scores in another, through every
domain's pipeline, and an input it cannot read is refused with what to change."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from flows.cli import main
from models.bundle import MANIFEST, export_bundle, install_bundle, read_bundle
from models.card import Architecture, ModelCard
from models.market import LSTMForecaster
from models.registry import ModelRegistry
from tasks.errors import BadInputError

TINY = Architecture(name="LSTMForecaster", kwargs={"n_features": 1, "hidden": 2})


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "here")
    torch.manual_seed(0)
    card = registry.register("prices", LSTMForecaster(**TINY.kwargs), ModelCard(architecture=TINY,
                             parameters={"lag": 5}, scalers={"SYM": ([1.0], [2.0])}),
                             extra_files={"reference.json": b"{}"})
    registry.promote("prices", card.version)
    return registry


class TestExport:
    def test_the_champion_with_its_card_and_files_and_their_checksums(self, registry, tmp_path: Path) -> None:
        manifest = export_bundle(registry, "prices", tmp_path / "m.zip")
        assert (manifest["name"], manifest["version"], manifest["architecture"]) == ("prices", "v1", "LSTMForecaster")
        with zipfile.ZipFile(tmp_path / "m.zip") as bundle:
            assert sorted(bundle.namelist()) == sorted([MANIFEST, "card.json", "weights.pt", "reference.json"])
        assert read_bundle(str(tmp_path / "m.zip"))[1]["reference.json"] == b"{}"

    def test_a_model_without_a_champion_needs_a_version(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="has no champion; name a version with --version"):
            export_bundle(ModelRegistry(tmp_path), "nothing", tmp_path / "m.zip")

    def test_the_bundle_is_a_zip(self, registry, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match=r"a bundle is a \.zip file; name it e\.g\. m\.zip"):
            export_bundle(registry, "prices", tmp_path / "m.tar")


class TestInstall:
    def test_the_model_is_the_champion_of_a_registry_of_its_own(self, registry, tmp_path: Path) -> None:
        export_bundle(registry, "prices", tmp_path / "m.zip")
        assert install_bundle(str(tmp_path / "m.zip"), tmp_path / "there") == "prices"
        there = ModelRegistry(tmp_path / "there")
        card = there.champion("prices")
        assert card.version == "v1" and card.scalers == {"SYM": ([1.0], [2.0])} and card.uri.startswith(there.root)
        model = there.load("prices", "v1", LSTMForecaster(**TINY.kwargs))
        original = registry.load("prices", "v1", LSTMForecaster(**TINY.kwargs))
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values(),
                                                     strict=True))

    def test_a_damaged_file_is_refused(self, registry, tmp_path: Path) -> None:
        rewritten(registry, tmp_path, lambda files: files | {"weights.pt": files["weights.pt"][:-10]})
        with pytest.raises(BadInputError, match="weights.pt does not match its checksum"):
            install_bundle(str(tmp_path / "changed.zip"), tmp_path / "there")

    @pytest.mark.parametrize(("content", "message"), [(b"not a zip", "not a tessera model bundle"),
                                                      (None, "file not found")])
    def test_not_a_bundle(self, tmp_path: Path, content: bytes | None, message: str) -> None:
        if content is not None:
            (tmp_path / "m.zip").write_bytes(content)
        with pytest.raises(BadInputError, match=message):
            read_bundle(str(tmp_path / "m.zip"))

    def test_a_newer_format_names_the_version_to_use(self, registry, tmp_path: Path) -> None:
        rewritten(registry, tmp_path, lambda files: files | {MANIFEST: json.dumps({"format": 2, "files": {}})})
        with pytest.raises(BadInputError, match="bundle format 2 is not 1"):
            read_bundle(str(tmp_path / "changed.zip"))


    def test_a_name_that_would_leave_the_registry_is_refused(self, registry, tmp_path: Path) -> None:
        def escape(files: dict) -> dict:
            manifest = json.loads(files[MANIFEST])
            return files | {MANIFEST: json.dumps(manifest | {"name": "../../elsewhere"})}

        rewritten(registry, tmp_path, escape)
        with pytest.raises(BadInputError, match="its model name '../../elsewhere' is not a valid name"):
            install_bundle(str(tmp_path / "changed.zip"), tmp_path / "there")
        assert not (tmp_path / "elsewhere").exists()


def rewritten(registry: ModelRegistry, folder: Path, change) -> None:
    """Export the champion, then write ``changed.zip`` with ``change(files)`` as its files."""
    export_bundle(registry, "prices", folder / "m.zip")
    with zipfile.ZipFile(folder / "m.zip") as bundle:
        files = {name: bundle.read(name) for name in bundle.namelist()}
    with zipfile.ZipFile(folder / "changed.zip", "w") as bundle:
        for name, data in change(files).items():
            bundle.writestr(name, data)


# what each domain's second run changes so that the bundle's model cannot read its input, and the hint expected
REFUSED = {"genome": ({"k": 3}, "run with --k 4 --length"),
           "sentiment": ({"clean_options": {"lemmatize": False}}, "run with every cleaning step on"),
           "market": ({"lag": 5}, "run with --lag 10 --horizon 1"),
           "satellite": ({"bands": ["B02", "B03", "B04"]}, "this run has no B08")}


@pytest.mark.slow
@pytest.mark.parametrize("domain", sorted(REFUSED))
def test_a_bundle_scores_on_another_data_root_and_refuses_what_it_cannot_read(
        domain: str, tessera_run, tessera_example, tessera_data_root: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    example = tessera_example(domain)
    trained = tessera_run(domain, **example)
    assert trained.exit_code == 0, trained.error
    name = trained.record["model"]["name"]
    bundle = tmp_path / "bundle" / "model.zip"
    assert main(["models", "export", name, "--to", str(bundle), "--out", str(tessera_data_root)]) == 0
    assert f"wrote {bundle}" in capsys.readouterr().out

    elsewhere = tmp_path / "elsewhere"
    scored = tessera_run(domain, **example, bundle=str(bundle), train="never", out=str(elsewhere))
    assert scored.exit_code == 0, scored.error
    model = scored.record["model"]
    assert (model["name"], model["scored_with"], model["trained"]) == (name, trained.record["model"]["version"],
                                                                      False)
    assert model["uri"].startswith(str(scored.dir / "bundle"))
    assert not (elsewhere / "models").exists()
    assert scored.record["stages"]["score" if domain != "market" else "forecast"]["output"]

    change, hint = REFUSED[domain]
    refused = tessera_run(domain, **{**example, **change}, bundle=str(bundle), out=str(elsewhere))
    assert refused.exit_code == 2 and f"model {name} v1 cannot score this run" in refused.error
    assert hint in refused.error


def test_a_bundle_trains_nothing(tessera_run, tmp_path: Path) -> None:
    result = tessera_run("market", bundle=str(tmp_path / "m.zip"), train="always")
    assert result.exit_code == 2 and "--bundle scores with the bundle's model and trains none" in result.error

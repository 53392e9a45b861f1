"""A data root on an object store: the store's URL functions on fsspec's memory filesystem, then whole runs
against a real S3 API (moto's server on 127.0.0.1) through s3fs, as a user with ``--out s3://...`` gets."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from models.card import Architecture, ModelCard
from models.registry import ModelRegistry
from tasks import runs, store
from tasks.testing import run_pipeline

BUCKET = "tessera-test"


@pytest.fixture
def memory_root() -> str:
    import uuid

    return f"memory://tessera-{uuid.uuid4().hex[:8]}"


class TestStoreOnUrls:
    def test_json_round_trip_exists_and_glob(self, memory_root: str) -> None:
        for run in ("b", "a"):
            store.write_json({"run": run}, store.join(memory_root, "market", "runs", run, "run.json"))
        found = store.glob(store.join(memory_root, "market", "runs", "*", "run.json"))
        assert [store.read_json(uri)["run"] for uri in found] == ["a", "b"]
        assert store.exists(store.join(memory_root, "market", "runs", "a", "run.json"))
        assert not store.exists(store.join(memory_root, "market", "runs", "c", "run.json"))

    def test_create_exclusive_is_a_lock(self, memory_root: str) -> None:
        marker = store.join(memory_root, "lock")
        assert store.create_exclusive(marker, b"first") is True
        assert store.create_exclusive(marker, b"second") is False
        assert store.read_bytes(marker) == b"first"

    def test_fetch_downloads_a_file_and_a_glob(self, memory_root: str, tmp_path: Path) -> None:
        for name in ("x_B02.tif", "x_B03.tif", "notes.txt"):
            store.write_bytes(name.encode(), store.join(memory_root, "in", name))
        one = store.fetch(store.join(memory_root, "in", "notes.txt"), tmp_path / "one")
        assert Path(one).read_bytes() == b"notes.txt"
        pattern = store.fetch(store.join(memory_root, "in", "*.tif"), tmp_path / "many")
        assert pattern == str(tmp_path / "many" / "*.tif")
        assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["x_B02.tif", "x_B03.tif"]
        assert store.fetch(str(tmp_path / "local.csv")) == str(tmp_path / "local.csv")

    def test_missing_url_is_bad_input_naming_it(self, memory_root: str, tmp_path: Path) -> None:
        with pytest.raises(store.StorageError, match="nothing.csv: not found") as info:
            store.fetch(store.join(memory_root, "nothing.csv"), tmp_path)
        assert info.value.exit_code == 2

    def test_registry_versions_and_champion(self, memory_root: str) -> None:
        registry = ModelRegistry(memory_root)
        model = torch.nn.Linear(3, 2)
        def a_card(**fields: object) -> ModelCard:
            return ModelCard(architecture=Architecture(name="Linear"), **fields)

        first = registry.register("m", model, a_card(metrics={"f1": 0.5}), extra_files={"ref.json": b"{}"})
        second = registry.register("m", model, a_card(metrics={"f1": 0.6}))
        assert (first.version, second.version) == ("v1", "v2")
        assert first.uri == f"{memory_root}/models/m/v1"
        registry.promote("m", "v2")
        assert registry.champion("m").metrics == {"f1": 0.6}
        loaded = registry.load("m", "v1", torch.nn.Linear(3, 2))
        assert torch.equal(loaded.weight, model.weight)
        assert store.read_bytes(store.join(first.uri, "ref.json")) == b"{}"

    def test_run_record_sync_uploads_and_rewrites_paths(self, memory_root: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_STAGING", str(tmp_path / "staging"))
        run = runs.RunRecord.start("market", {}, out=memory_root, run_id="r1")
        assert run.dir == tmp_path / "staging" / "market" / "r1"
        with run.recording():
            run.record_stage("score", 0.1, store.write_json({"ok": True}, str(run.dir / "forecasts.json")))
            store.write_bytes(b"<html>", run.dir / "figures" / "a.png")
        run.sync()
        uri = f"{memory_root}/market/runs/r1"
        record = store.read_json(store.join(uri, "run.json"))
        assert record["dir"] == record["uri"] == uri
        assert record["stages"]["score"]["output"] == f"{uri}/forecasts.json"
        assert store.read_bytes(f"{uri}/figures/a.png") == b"<html>"
        assert not run.dir.exists()
        assert run.to_dict()["dir"] == uri
        assert [r["run_id"] for r in runs.list_runs("market", out=memory_root)] == ["r1"]

    def test_a_failed_run_is_uploaded_and_keeps_its_staging_folder_to_resume(
            self, memory_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_STAGING", str(tmp_path / "staging"))
        run = runs.RunRecord.start("market", {}, out=memory_root, run_id="r2")
        with pytest.raises(ValueError), run.recording():
            store.write_json({"stage": 1}, str(run.dir / "first.json"))
            raise ValueError("the second stage failed")
        run.sync()
        record = store.read_json(f"{memory_root}/market/runs/r2/run.json")
        assert record["status"] == "failed" and record["error"] == "the second stage failed"
        assert (run.dir / "first.json").exists()


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 with one bucket; the AWS variables point s3fs at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}"
    server.stop()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
class TestRunsOnS3:
    def test_market_runs_land_in_the_bucket_and_share_the_champion(self, s3_server: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        from tasks.market.synthetic import write_synthetic_prices

        monkeypatch.setenv("TESSERA_STAGING", str(tmp_path / "staging"))
        root = f"{s3_server}/market-root"
        prices = write_synthetic_prices(tmp_path / "prices.csv", symbols=3, days=250)
        store.write_bytes(Path(prices).read_bytes(), f"{s3_server}/inputs/prices.csv")
        first = run_pipeline("market", input=f"{s3_server}/inputs/prices.csv", out=root)
        second = run_pipeline("market", input=f"{s3_server}/inputs/prices.csv", out=root)
        assert (first.exit_code, second.exit_code) == (0, 0), (first.error, second.error)
        for result in (first, second):
            uri = f"{root}/market/runs/{result.record['run_id']}"
            assert result.record["dir"] == uri
            assert store.exists(f"{uri}/report.html") and store.exists(f"{uri}/forecasts.parquet")
            assert all(stage["output"] is None or stage["output"].startswith(uri)
                       for stage in result.record["stages"].values())
        assert result.record["counts"]["records_in"] == 750
        assert first.record["model"]["uri"].startswith(f"{root}/models/")
        model = second.record["model"]  # --train auto: the champion in the bucket forecasts
        assert (model["version"], model["trained"], model["scored_with"]) == ("v1", False, "v1")
        assert [r["run_id"] for r in runs.list_runs("market", out=root)] == [first.record["run_id"],
                                                                             second.record["run_id"]]
        assert not any((tmp_path / "staging" / "market").iterdir())

    def test_a_missing_bucket_stops_the_run_before_any_work(self, s3_server: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_STAGING", str(tmp_path / "staging"))
        result = run_pipeline("market", out="s3://no-such-bucket/root")
        assert result.exit_code == 2
        assert result.error.startswith("s3://no-such-bucket/root: cannot write to this data root")
        assert not (tmp_path / "staging").exists()

    def test_second_satellite_run_monitors_change_against_the_first(self, s3_server: str, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_STAGING", str(tmp_path / "staging"))
        root = f"{s3_server}/satellite-root"
        first = run_pipeline("satellite", out=root, date="2024-04-01")
        second = run_pipeline("satellite", out=root, date="2024-09-01")
        assert (first.exit_code, second.exit_code) == (0, 0), (first.error, second.error)
        change = second.record["monitor"]["change"]
        assert change["previous_run"] == first.record["run_id"] and change["changed_share"] > 0
        assert store.exists(f"{second.record['dir']}/change.tif")
        assert second.record["model"]["trained"] is False and second.record["model"]["version"] == "v1"
        champion = f"{root}/models/{second.record['model']['name']}/promotions/000001.json"
        assert json.loads(store.read_bytes(champion))["version"] == "v1"

"""tasks/tracking.py: a run logged to a real MLflow server on 127.0.0.1 (SQLite backend, artifacts served by it),
a tracking server that is down, and no mlflow import when tracking is off."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tasks import tracking
from tests.conftest import _stop, free_port

RUN = {"flow": "market", "run_id": "r1", "status": "completed", "uri": "/x", "dir": "/x", "parameters": {},
       "counts": {"records_in": 10, "records_valid": 9, "records_quarantined": 1},
       "stages": {"ingest": {"seconds": 1.5, "output": "/x/a"}},
       "quality": [{"suite": "market_prices", "success": True}],
       "metrics": {"rmse": 0.5, "per_class": {"a/b+c": {"f1": 0.25}}, "note": "text", "cv": {"rmse": {"mean": 1.0}}},
       "baselines": {"persistence": {"rmse": 0.75}}, "model": None}


class TestRunMetrics:
    def test_metrics_beside_their_baselines_counts_times_and_gates(self) -> None:
        assert tracking.run_metrics(RUN) == {
            "rmse": 0.5, "per_class.a/b_c.f1": 0.25, "cv.rmse.mean": 1.0, "baseline.persistence.rmse": 0.75,
            "records.records_in": 10.0, "records.records_valid": 9.0, "records.records_quarantined": 1.0,
            "seconds.ingest": 1.5, "gate.market_prices.success": 1.0}

    def test_the_option_comes_before_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert tracking.tracking_uri(None) is None and tracking.track(RUN, None) is None
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
        assert tracking.tracking_uri(None) == "http://env:5000"
        assert tracking.tracking_uri("http://option:5000") == "http://option:5000"


def test_tracking_off_imports_no_mlflow() -> None:
    code = ("import sys; import flows.cli, flows.common, flows.market; from tasks.tracking import track; "
            "assert track({}, None) is None; assert 'mlflow' not in sys.modules, 'mlflow imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True,
                            text=True, env={**os.environ, "MLFLOW_TRACKING_URI": ""}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """``mlflow server`` with a SQLite backend store and artifacts it serves itself, as a team runs it (without
    its job runner, which serves GenAI features tessera does not use)."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = open(folder / "server.log", "w")
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
                               "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--artifacts-destination", str(folder / "artifacts")],
                              stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((folder / "server.log").read_text()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        _stop(server)
        log.close()


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_is_logged_with_its_metrics_baselines_report_and_model(mlflow_server, tessera_run,
                                                                      tessera_example) -> None:
    from mlflow.tracking import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    result = tessera_run("market", **tessera_example("market"), mlflow=mlflow_server)
    assert result.exit_code == 0, result.error
    logged = result.record["mlflow"]
    assert logged["tracking_uri"] == mlflow_server and logged["experiment"] == "tessera-market"
    client = MlflowClient(mlflow_server)
    run = client.get_run(logged["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == result.record["run_id"]
    metrics = run.data.metrics
    assert metrics["rmse"] == pytest.approx(result.record["metrics"]["rmse"])
    assert metrics["baseline.persistence.rmse"] == pytest.approx(result.record["baselines"]["persistence"]["rmse"])
    assert metrics["gate.market_prices.success"] == 1.0
    assert len(client.get_metric_history(run.info.run_id, "history.train_loss")) >= 2
    assert run.data.params["epochs"] == str(result.record["parameters"]["epochs"])
    model = result.record["model"]
    assert run.data.tags["tessera.model"] == f"{model['name']}:{model['version']}"
    top = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"report.html", "run.json", "training.json", "quality.json", "figures", "model"} <= top
    assert {f.path for f in client.list_artifacts(run.info.run_id, "model")} >= {"model/card.json",
                                                                                  "model/weights.pt"}
    assert {f.path for f in client.list_artifacts(run.info.run_id, "figures")} >= {"figures/forecasts.png"}

    async def artifact_keys() -> set[str]:
        async with get_client() as prefect:
            flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.data.tags["prefect.flow_run_id"]]))
            return {a.key for a in await prefect.read_artifacts(artifact_filter=flt)}

    assert {"market-mlflow", "market-report"} <= asyncio.run(artifact_keys())


@pytest.mark.slow
def test_a_tracking_server_that_is_down_is_named_in_run_json_and_the_run_completes(
        tessera_run, tessera_example, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = f"http://127.0.0.1:{free_port()}"
    result = tessera_run("market", **tessera_example("market"), mlflow=down)
    assert result.exit_code == 0 and result.record["status"] == "completed"
    assert result.record["mlflow"]["tracking_uri"] == down and "error" in result.record["mlflow"]

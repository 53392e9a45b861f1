"""prefect.yaml and a Prefect work pool: the file is what the domain declarations give, and a real server,
process pool and worker on 127.0.0.1 run a deployment made from it with ``prefect deploy --all``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deployments.project import prefect_yaml
from deployments.serve import build_deployments, wait_healthy
from tests.conftest import _stop, free_port

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_is_written_from_the_domain_declarations() -> None:
    committed = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert committed == yaml.safe_load(prefect_yaml()), "run: tessera prefect-yaml > prefect.yaml"


def test_prefect_yaml_declares_what_serve_serves() -> None:
    declared = {d["name"]: d for d in yaml.safe_load(prefect_yaml("gpu"))["deployments"]}
    served = {d.name: d for d in build_deployments()}
    assert declared.keys() == served.keys()
    for name, deployment in served.items():
        assert declared[name]["entrypoint"] == deployment.entrypoint
        assert declared[name]["work_pool"]["name"] == "gpu"
        crons = [s.schedule.cron for s in deployment.schedules]
        assert [s["cron"] for s in declared[name]["schedules"]] == crons
    assert declared["satellite-monitoring"]["schedules"][0]["cron"] == "0 6 * * *"


@pytest.mark.integration
@pytest.mark.slow
def test_a_worker_of_a_process_pool_runs_a_deployment_from_prefect_yaml(tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_API_LOG_RETRYABLE_ERRORS": "true", "TESSERA_DATA": str(tmp_path / "data")}
    prefect = str(Path(sys.executable).parent / "prefect")
    server_log, worker_log = open(tmp_path / "server.log", "w"), open(tmp_path / "worker.log", "w")
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=server_log, stderr=subprocess.STDOUT)
    worker = None
    try:
        wait_healthy(url, timeout=120, process=server)
        for command in (["work-pool", "create", "tessera", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
            done = subprocess.run([prefect, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        worker = subprocess.Popen([prefect, "worker", "start", "--pool", "tessera"], cwd=tmp_path, env=env,
                                  stdout=worker_log, stderr=subprocess.STDOUT)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            run = run_deployment("market/market", parameters={"params": {"epochs": 2, "folds": 2, "lag": 10}},
                                 timeout=300, poll_interval=1)
            assert run.state.is_completed(), (run.state, (tmp_path / "worker.log").read_text()[-3000:])

            async def artifact_keys() -> set[str]:
                async with get_client() as client:
                    flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
                    return {a.key for a in await client.read_artifacts(artifact_filter=flt)}

            assert {"market-metrics", "market-report", "market-prices-gate"} <= asyncio.run(artifact_keys())
        records = [json.loads(p.read_text()) for p in (tmp_path / "data" / "market" / "runs").glob("*/run.json")]
        assert [r["status"] for r in records] == ["completed"] and records[0]["parameters"]["lag"] == 10
    finally:
        _stop(worker)
        _stop(server)
        server_log.close()
        worker_log.close()

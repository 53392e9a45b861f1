"""Deployments against a real Prefect server on a free loopback port: schedule, trigger, artifacts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"no Prefect server at {url}")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A Prefect server and ``tessera serve`` as separate processes, as a user runs them."""
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_API_PORT": str(port), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "TESSERA_DATA": str(tmp / "data")}
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    serving = None
    try:
        wait_healthy(url)
        serving = subprocess.Popen([str(bin_dir / "tessera"), "serve", "--limit", "2"], env=env, cwd=ROOT,
                                   stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT)
        yield {"url": url, "data": tmp / "data", "log": tmp / "serve.log", "process": serving}
    finally:
        for proc in (serving, server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _api(url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: url})


def test_every_pipeline_is_served_and_satellite_runs_on_its_cron(served) -> None:
    import asyncio

    from prefect import get_client

    async def deployments():
        async with get_client() as client:
            for _ in range(120):
                found = await client.read_deployments()
                if len(found) >= 4:
                    return found
                await asyncio.sleep(1)
            return await client.read_deployments()

    with _api(served["url"]):
        found = {d.name: d for d in asyncio.run(deployments())}
    assert set(found) == {"satellite-monitoring", "genome", "sentiment", "market"}
    schedule = found["satellite-monitoring"].schedules[0].schedule
    assert schedule.cron == "0 6 * * *" and schedule.timezone == "UTC"
    assert not found["genome"].schedules


def test_a_run_triggered_through_the_api_completes_with_its_artifacts(served) -> None:
    import asyncio

    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    with _api(served["url"]):
        run = run_deployment("satellite/satellite-monitoring", parameters={"date": "2024-05-01", "epochs": 2},
                             timeout=240)
        assert run.state.is_completed(), (run.state, served["log"].read_text()[-3000:])

        async def artifacts():
            async with get_client() as client:
                flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
                return {a.key for a in await client.read_artifacts(artifact_filter=flt) if a.key}

        keys = asyncio.run(artifacts())
    assert {"satellite-metrics", "satellite-report", "satellite-scenes-gate", "satellite-mosaic-gate"} <= keys
    assert list((served["data"] / "satellite" / "runs").glob("*/run.json"))

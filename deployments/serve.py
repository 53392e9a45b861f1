"""Deployments of every pipeline and the serve entry point: ``tessera serve`` / ``make serve``.

Satellite monitoring runs on a cron schedule (its domain's, in flows/domains.py); the other pipelines run on demand
from the UI; ``cleanup`` removes old runs every Sunday at 03:00 (``TESSERA_CLEANUP_CRON``). A Prefect server
(SQLite, 127.0.0.1) is started unless PREFECT_API_URL already names one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

SCHEDULE_TIMEZONE = os.environ.get("TESSERA_SCHEDULE_TIMEZONE", "UTC")
CLEANUP_CRON = os.environ.get("TESSERA_CLEANUP_CRON", "0 3 * * 0")  # Sundays 03:00


@dataclass(frozen=True)
class Deployment:
    """One deployment, declared once for ``tessera serve`` (:func:`build_deployments`) and for a work pool's
    ``prefect.yaml`` (deployments/project.py)."""

    flow: str  # "module:attribute" of the flow, as in flows/domains.py
    name: str
    description: str
    tags: tuple[str, ...]
    cron: str | None

    @property
    def entrypoint(self) -> str:
        """The flow's module path, e.g. flows.market.market: a run loads it whatever the working directory."""
        return self.flow.replace(":", ".")

    def load_flow(self) -> Any:
        from flows.domains import load

        return load(self.flow)


def deployment_definitions() -> list[Deployment]:
    """One deployment per domain (the satellite monitoring on its schedule, the others on demand), and the weekly
    ``cleanup``."""
    from flows.domains import domains

    pipelines = [Deployment(domain.flow, domain.deployment_name, domain.summary, domain.tags,
                            domain.schedule) for domain in domains().values()]
    return [*pipelines, Deployment("flows.cleanup:cleanup", "cleanup", "remove old runs and their Prefect results",
                                   ("maintenance",), CLEANUP_CRON)]


def build_deployments() -> list:
    """The deployments ``tessera serve`` serves, each form its parameter model, whose defaults start a sensible run.
    A served run loads its flow by module path (``flows.market.market``), whatever the working directory."""
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    return [d.load_flow().to_deployment(d.name, description=d.description, tags=list(d.tags),
                                        schedule=Cron(d.cron, timezone=SCHEDULE_TIMEZONE) if d.cron else None,
                                        entrypoint_type=EntrypointType.MODULE_PATH)
            for d in deployment_definitions()]


def healthy(url: str) -> bool:
    """Whether the Prefect API at ``url`` (ending in /api) answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_healthy(url: str, *, timeout: float = 90, process: subprocess.Popen | None = None) -> None:
    """Wait until the API at ``url`` answers; fail early if ``process`` (the server) has exited."""
    deadline = time.monotonic() + timeout
    while not healthy(url):
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"no Prefect server answers at {url}; is the port in use? "
                               "pass --port or set PREFECT_API_URL")
        time.sleep(0.5)


@contextmanager
def prefect_server(port: int = 4200, *, timeout: float = 90) -> Iterator[str]:
    """The API URL of a Prefect server: PREFECT_API_URL if set, else a server started on 127.0.0.1:port."""
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        yield existing
        return
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port),
           "PREFECT_UI_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    server = subprocess.Popen([prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_healthy(url, timeout=timeout, process=server)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def serve_all(*, port: int = 4200, limit: int = 4) -> None:
    """Register every deployment and serve them until Ctrl-C; schedules stay active across restarts."""
    from prefect import serve

    with prefect_server(port) as url:
        print(f"Prefect UI and API: {url.removesuffix('/api')}  (Ctrl-C stops)", flush=True)
        serve(*build_deployments(), pause_on_shutdown=False, limit=limit)


if __name__ == "__main__":
    serve_all()

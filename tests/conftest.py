"""Shared fixtures and helpers: a Prefect test server for flow tests, tiny georeferenced rasters and price tables
built in the test."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import rasterio
from rasterio.transform import from_origin

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Every process the tests start inherits this mark, also one orphaned when its parent was killed.
SESSION_MARK = "PYTEST_TESSERA_SESSION"
# pytest-xdist's workers inherit the controller's mark, so the controller finds what any of them left.
os.environ.setdefault(SESSION_MARK, f"{os.getpid()}-{uuid.uuid4().hex}")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per worker (and per process a worker starts): two workers with two threads each on two
    # cores spent half again the CPU time in contention and finished no sooner.
    os.environ["OMP_NUM_THREADS"] = "1"
# processes Python itself keeps until the interpreter exits, not left behind by a test
INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "loky", "forkserver")


def started_here() -> list[psutil.Process]:
    """Running processes carrying this session's mark, Python's own helpers aside."""
    mark, me, found = os.environ[SESSION_MARK], os.getpid(), []
    for process in psutil.process_iter():
        try:
            if process.pid != me and process.environ().get(SESSION_MARK) == mark:
                found.append(process)
        except psutil.Error:
            continue
    return [p for p in found if not any(helper in " ".join(_cmdline(p)) for helper in INTERPRETER_HELPERS)]


def surviving_children(grace: float = 15.0) -> list[psutil.Process]:
    """Processes started by this session still running after ``grace`` seconds for them to end."""
    psutil.wait_procs(started_here(), timeout=grace)
    return started_here()


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


# Test files whose tests share a server started by a session or module fixture: under pytest-xdist each group runs
# on one worker, so its server starts once. (xdist's own xdist_group mark no longer groups under pytest 9.2:
# pytest-dev/pytest-xdist#1386.) Scopes with the most tests are scheduled first, so these start first.
SHARED_SERVERS = {"served": ("test_load.py", "test_resume.py", "test_serve.py", "test_ui.py"),
                  "dask_cluster": ("test_dask_cluster.py",)}


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    group_of = {file: group for group, files in SHARED_SERVERS.items() for file in files}

    class SharedServerScheduling(LoadScopeScheduling):
        """Each test on its own, but the tests of a shared server's files together."""

        def _split_scope(self, nodeid: str) -> str:
            return group_of.get(Path(nodeid.split("::")[0]).name, nodeid)

    return SharedServerScheduling(config, log)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test left a process running (and stop it, so nothing outlives the run). Under xdist
    the controller checks, once its workers have ended: a worker would see the others running."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    alive = surviving_children()
    if not alive:
        return
    for process in alive:
        print(f"\nleft running by the tests: pid {process.pid}: {' '.join(_cmdline(process))[:200]}")
        process.kill()
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def prefect_harness(tessera_prefect):
    """The plugin's session Prefect server (tasks/testing.py), so every CI run exercises the plugin."""
    yield


@pytest.fixture
def data_root(tessera_data_root: Path) -> Path:
    return tessera_data_root


def write_raster(path: Path, data: np.ndarray, *, origin: tuple[float, float] = (600_000.0, 5_000_000.0),
                 res: float = 10.0, crs: str | None = "EPSG:32632", nodata: float | None = 0,
                 descriptions: list[str] | None = None) -> Path:
    """A small GeoTIFF: ``data`` is (y, x) or (band, y, x)."""
    data = data[None] if data.ndim == 2 else data
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "transform": from_origin(*origin, res, res), "nodata": nodata}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return path


def write_text(folder: Path, text: str, name: str = "p.csv") -> str:
    (folder / name).write_text(text)
    return str(folder / name)


def uneven_prices() -> pd.DataFrame:
    """Three symbols of 60, 33 and 3 rows with gaps in the dates, a missing volume and integer-valued volumes;
    the third symbol starts after the split."""
    rng = np.random.default_rng(3)
    days = pd.bdate_range("2024-01-01", periods=80)
    frames = []
    for symbol, rows in (("AAA", np.r_[0:40, 45:65]), ("BBB", np.r_[10:43]), ("CCC", np.r_[70:73])):
        price = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, len(rows))))
        volume = rng.integers(1_000, 100_000, len(rows)).astype(float)
        frames.append(pd.DataFrame({"date": days[rows], "symbol": symbol, "price": price, "volume": volume}))
    prices = pd.concat(frames, ignore_index=True)
    prices.loc[5, "volume"] = np.nan
    return prices


SERVE_LIMIT = 2


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc) -> None:
    """SIGTERM (a background shell ignores SIGINT for its children), then kill after 30 s."""
    import subprocess

    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory):
    """A Prefect server (API and UI) and ``tessera serve --limit 2`` as separate processes, as a user runs them;
    shared by the serve, UI and load tests. Yields url, ui, data, log, limit and the serving process."""
    import subprocess
    import sys

    from deployments.serve import wait_healthy

    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port), "PREFECT_UI_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
           "TESSERA_DATA": str(tmp / "data")}
    bin_dir = Path(sys.executable).parent
    root = Path(__file__).resolve().parents[1]
    server_log, serve_log = open(tmp / "server.log", "w"), open(tmp / "serve.log", "w")
    server = subprocess.Popen([str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=server_log, stderr=subprocess.STDOUT)
    serving = None
    try:
        wait_healthy(url, timeout=120, process=server)
        serving = subprocess.Popen([str(bin_dir / "tessera"), "serve", "--limit", str(SERVE_LIMIT)], env=env,
                                   cwd=root, stdout=serve_log, stderr=subprocess.STDOUT)
        yield {"url": url, "ui": url.removesuffix("/api"), "data": tmp / "data", "log": tmp / "serve.log",
               "limit": SERVE_LIMIT, "process": serving}
    finally:
        _stop(serving)
        _stop(server)
        server_log.close()
        serve_log.close()


@pytest.fixture(scope="session")
def served_deployments(served: dict) -> dict:
    """The served deployments by name, once every domain's and the cleanup are registered (``tessera serve`` takes
    ~10 s)."""
    import asyncio
    import time

    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.domains import domains

    async def read() -> list:
        async with get_client() as client:
            return await client.read_deployments()

    deadline = time.monotonic() + 120
    with temporary_settings(updates={PREFECT_API_URL: served["url"]}):
        while True:
            found = {d.name: d for d in asyncio.run(read())}
            if len(found) > len(domains()) or time.monotonic() > deadline or served["process"].poll() is not None:
                return found
            time.sleep(1)

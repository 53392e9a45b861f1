"""The flows on a real distributed Dask cluster on 127.0.0.1: a scheduler and two worker processes started
with the ``dask`` CLI, as on a cluster of machines; results must equal a run on the local in-process cluster,
also when a worker is killed mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from flows.genome import genome
from flows.params import GenomeParams, SatelliteParams
from flows.satellite import satellite

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[1]
SATELLITE = {"date": "2024-05-01", "epochs": 1}  # the tests compare mosaics, not models
GENOME = {"epochs": 2, "synthetic_n": 300}


class LoopbackCluster:
    """A ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each worker in its own process group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                               os.environ.get("PYTHONPATH")]))}
        self.env.pop("TESSERA_DASK_ADDRESS", None)
        self.scheduler = self._spawn("scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                                   "--port", "0", "--no-dashboard",
                                                   "--scheduler-file", str(self.scheduler_file)])
        self.workers: dict[str, subprocess.Popen] = {}
        self.client = None

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "wb") as log:
            return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_worker(self) -> str:
        name = f"w{len(self.workers)}"
        self.workers[name] = self._spawn(name, [
            "distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file), "--host", "127.0.0.1",
            "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--name", name,
            "--local-directory", str(self.folder / name)])
        return name

    def connect(self, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        while not self.scheduler_file.exists() or not self.scheduler_file.stat().st_size:
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start; see {self.folder / 'scheduler.log'}")
            time.sleep(0.1)
        self.client = Client(scheduler_file=str(self.scheduler_file), set_as_default=False, timeout="30s")

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def live_workers(self) -> list[str]:
        return [n for n, p in self.workers.items() if p.poll() is None]

    def ensure_workers(self, n: int) -> None:
        while len(self.live_workers()) < n:
            self.start_worker()
        self.client.wait_for_workers(n, timeout=60)

    def worker_names(self) -> dict[str, str]:
        """Worker address -> the name it was started with."""
        return {addr: w["name"] for addr, w in self.client.scheduler_info(n_workers=-1)["workers"].items()}

    def executed(self) -> dict[str, int]:
        """Tasks each live worker has executed, by worker name."""
        counts = self.client.run(lambda dask_worker: dask_worker.state.executed_count)
        names = self.worker_names()
        return {names[addr]: n for addr, n in counts.items()}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in [*self.workers.values(), self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers.values(), self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def loopback_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackCluster]:
    cluster = LoopbackCluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.connect()
        cluster.ensure_workers(2)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(loopback_cluster: LoopbackCluster) -> LoopbackCluster:
    """The module's cluster with two live workers (a replacement is started for one a test killed)."""
    loopback_cluster.ensure_workers(2)
    return loopback_cluster


@pytest.fixture(scope="module")
def local_mosaic(prefect_harness, tmp_path_factory: pytest.TempPathFactory) -> xr.Dataset:
    """The satellite mosaic of an uninterrupted run on the local in-process cluster."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("TESSERA_DASK_ADDRESS", raising=False)
        record = run_json(satellite(SatelliteParams(**SATELLITE, out=str(tmp_path_factory.mktemp("local")))))
    assert record["status"] == "completed", record["error"]
    return xr.open_zarr(Path(record["dir"]) / "mosaic.zarr").load()


def run_json(result: dict) -> dict:
    return json.loads((Path(result["dir"]) / "run.json").read_text())


def assert_same_mosaic(record: dict, expected: xr.Dataset) -> None:
    got = xr.open_zarr(Path(record["dir"]) / "mosaic.zarr").load()
    assert got["reflectance"].shape == expected["reflectance"].shape
    assert np.allclose(got["reflectance"].values, expected["reflectance"].values, equal_nan=True)
    np.testing.assert_array_equal(got["labels"].values, expected["labels"].values)
    np.testing.assert_array_equal(got["split"].values, expected["split"].values)


def test_flows_spread_over_both_workers_and_match_a_local_run(cluster: LoopbackCluster, data_root: Path,
                                                              local_mosaic: xr.Dataset) -> None:
    before = cluster.executed()
    sat = run_json(satellite(SatelliteParams(**SATELLITE, out=str(data_root / "satellite"),
                                             dask_address=cluster.address)))
    gen = run_json(genome(GenomeParams(**GENOME, out=str(data_root / "genome"), dask_address=cluster.address)))
    after = cluster.executed()

    assert sat["status"] == "completed", sat["error"]
    assert gen["status"] == "completed", gen["error"]
    done = {name: after[name] - before.get(name, 0) for name in after}
    assert len(done) == 2 and all(n > 0 for n in done.values()), f"tasks executed per worker: {done}"
    assert_same_mosaic(sat, local_mosaic)


def test_a_cog_written_in_chunks_by_two_worker_processes_is_intact(cluster: LoopbackCluster,
                                                                   tmp_path: Path) -> None:
    """A 2048 x 2048 class map in 16 chunks of 512, written by ``write_cog`` through the cluster."""
    import dask.array as da
    import rasterio
    import rioxarray  # noqa: F401  (the .rio accessor)

    from tasks.cog import write_cog
    from tasks.compute import dask_client

    n = 2048
    coords = {"y": 4_999_995.0 - 10 * np.arange(n), "x": 600_005.0 + 10 * np.arange(n)}
    with dask_client(cluster.address):
        for trial in range(3):
            classes = np.random.default_rng(trial).integers(0, 200, size=(n, n), dtype="uint8")
            lazy = xr.DataArray(da.from_array(classes, chunks=512), dims=("y", "x"), coords=coords)
            uri = write_cog(lazy.rio.write_crs("EPSG:32632"), tmp_path / f"classmap{trial}.tif", nodata=255)
            with rasterio.open(uri) as cog:
                np.testing.assert_array_equal(cog.read(1), classes)


def test_run_survives_a_worker_killed_mid_run(cluster: LoopbackCluster, data_root: Path,
                                              local_mosaic: xr.Dataset) -> None:
    """The first worker seen executing a task of the run is SIGKILLed while that task is in flight (its
    ``dask worker`` process, the nanny; the worker process under it exits with it). In practice this lands in
    the mosaic stage, ~1 s into the run; the scheduler reruns the lost task on the other worker."""
    names = cluster.worker_names()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(satellite, SatelliteParams(**SATELLITE, out=str(data_root), dask_address=cluster.address))
        killed, in_flight = None, []
        started = time.monotonic()
        deadline = started + 120
        while killed is None and not run.done() and time.monotonic() < deadline:
            busy = {addr: keys for addr, keys in cluster.client.processing().items() if keys}
            if busy:
                addr, in_flight = next(iter(busy.items()))
                killed = names[addr]
                cluster.workers[killed].kill()
                print(f"killed {killed} {time.monotonic() - started:.2f} s into the run, running {in_flight}")
            time.sleep(0.01)
        record = run_json(run.result(timeout=300))

    assert killed is not None, "no worker was seen executing a task of the run"
    assert cluster.workers[killed].wait(timeout=10) == -9
    assert record["status"] == "completed", record["error"]
    assert len(cluster.client.scheduler_info()["workers"]) == 1, f"killed {killed} while it ran {in_flight}"
    assert_same_mosaic(record, local_mosaic)


def test_returning_freed_memory_nests_and_relaxes_once_the_last_block_ends() -> None:
    from tasks import compute

    with compute.returning_freed_memory():
        with compute.returning_freed_memory():
            assert compute._lean_depth == 2
        assert compute._lean_depth == 1
    assert compute._lean_depth == 0
    with pytest.raises(RuntimeError), compute.returning_freed_memory():
        raise RuntimeError("the stage failed")
    assert compute._lean_depth == 0

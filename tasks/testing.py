"""The tessera pytest plugin: fixtures to test pipelines offline, in seconds, in a user's own test suite.

Registered through the ``pytest11`` entry point, so installing tessera makes these fixtures available:

- ``tessera_prefect``: one temporary Prefect server for the session (no server of your own needed);
- ``tessera_data_root``: a temporary data root (``TESSERA_DATA``) per test;
- ``tessera_dask``: the address of a small local Dask cluster for the session;
- ``tessera_example``: ``tessera_example("genome")`` writes a domain's tiny example input and returns the
  parameters that run on it; ``tessera_scenes``, ``tessera_sequences``, ``tessera_posts``, ``tessera_prices``
  are the built-in domains' (GeoTIFF folder with labels, FASTA, CSV, CSV);
- ``tessera_run``: run a pipeline and get its exit code and parsed run.json.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class RunResult:
    """What a pipeline run ended with: the CLI's exit code, run.json as a dict, and the error line if any."""

    exit_code: int
    record: dict
    error: str | None

    @property
    def dir(self) -> Path:
        return Path(self.record["dir"])


@pytest.fixture(scope="session")
def tessera_prefect() -> Iterator[None]:
    """A temporary Prefect server and database for the whole test session."""
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def tessera_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data root for runs and models, set as TESSERA_DATA for the test."""
    root = tmp_path / "data"
    monkeypatch.setenv("TESSERA_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def tessera_dask() -> Iterator[str]:
    """The address of a small local Dask cluster (one worker process, two threads) on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def tessera_example(tmp_path: Path) -> Callable[[str], dict]:
    """``tessera_example("genome")``: write a domain's tiny example input (its ``Domain.example``) into the test's
    temporary folder and return the parameters that run on it, for any domain of the registry."""
    from flows.domains import domains

    return lambda domain: domains()[domain].write_example(tmp_path / "examples" / domain)


@pytest.fixture
def tessera_scenes(tessera_example) -> dict:
    """Four overlapping Sentinel-2-like tiles (10 m and 20 m bands, SCL masks) and a label raster."""
    from tasks.satellite.synthetic import CLASSES

    params = tessera_example("satellite")
    return {"folder": params["input"], "labels": params["labels"], "classes": CLASSES}


@pytest.fixture
def tessera_sequences(tessera_example) -> str:
    """A FASTA of 300 labelled regulatory regions (``label=`` in the headers), with a few faulty records."""
    return tessera_example("genome")["input"]


@pytest.fixture
def tessera_posts(tessera_example) -> str:
    """A CSV of 400 labelled posts (text, label) with duplicates and faulty rows."""
    return tessera_example("sentiment")["input"]


@pytest.fixture
def tessera_prices(tessera_example) -> str:
    """A long-form OHLCV CSV of three symbols over 250 trading days."""
    return tessera_example("market")["input"]


def run_pipeline(domain: str, *, fast: bool = True, **parameters) -> RunResult:
    """Run one pipeline in this process; never raises for a failed run: read ``exit_code`` and ``record``. Fast
    mode (``fast``) runs the same flow with its domain's ``fast`` parameters: few epochs, small synthetic sets."""
    from flows.domains import domains
    from tasks.errors import exit_code_for
    from tasks.runs import RunFiles
    from tasks.store import data_root, exists, join, read_json

    run_id = parameters.pop("run_id", None) or f"test-{uuid.uuid4().hex[:8]}"
    params = {**(domains()[domain].fast if fast else {}), **parameters, "run_id": run_id}
    try:
        domains()[domain].run(**params)
        code, error = 0, None
    except Exception as exc:  # the exit code is the result under test
        code, error = exit_code_for(exc), str(exc)
    path = join(data_root(parameters.get("out")), domain, "runs", run_id, RunFiles.record.name)
    record = read_json(path) if exists(path) else {}
    return RunResult(code, record, error)


@pytest.fixture
def tessera_run(tessera_prefect, tessera_data_root) -> Callable[..., RunResult]:
    """``tessera_run("genome", input=..., epochs=2)``: run a pipeline (fast mode by default) in the test's
    data root under the session's Prefect server."""
    return run_pipeline

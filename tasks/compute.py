"""The one Dask entry point: connect to the user's scheduler or start a local cluster sized to the machine."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

_QUIET_LOGGERS = ("distributed", "distributed.scheduler", "distributed.worker", "distributed.nanny",
                  "distributed.core", "distributed.http.proxy", "bokeh", "tornado")


def quiet_dask_logs(level: int = logging.WARNING) -> None:
    """distributed logs ~130 INFO lines per cluster lifetime; keep warnings only."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)


def dask_address(address: str | None = None) -> str | None:
    """The scheduler to use: the argument, else ``TESSERA_DASK_ADDRESS``, else None (start a local one)."""
    return address or os.environ.get("TESSERA_DASK_ADDRESS") or None


def local_cluster_kwargs() -> dict:
    """One worker inside this process with a thread per core: numpy, GDAL and torch release the GIL, and
    threads share memory, so nothing is copied or pickled between workers and the cluster starts in a
    quarter second. Memory is capped at 3/4 of the machine so Dask spills to disk before the OS kills
    anything. Pure-Python stages (text cleaning) are GIL-bound here: a cluster of worker processes, named
    with --dask-address, runs them in parallel."""
    cores = os.cpu_count() or 1
    return {
        "n_workers": 1,
        "threads_per_worker": cores,
        "processes": False,
        "dashboard_address": "127.0.0.1:0",
        "memory_limit": int(psutil.virtual_memory().total * 0.75),
        "local_directory": os.path.join(tempfile.gettempdir(), "tessera-dask"),
    }


@contextmanager
def dask_client(address: str | None = None) -> Iterator:
    """A ``distributed.Client`` for the duration of a block.

    Within a Prefect task already running on a Dask cluster, use ``prefect_dask.get_dask_client`` instead.
    """
    from distributed import Client, LocalCluster

    quiet_dask_logs()
    address = dask_address(address)
    if address:
        with Client(address, timeout="30s") as client:
            yield client
        return
    with LocalCluster(**local_cluster_kwargs()) as cluster, Client(cluster) as client:
        yield client

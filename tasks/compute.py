"""The one Dask entry point: connect to the user's scheduler or start a local cluster sized to the machine."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

# glibc mallopt parameters, and (trim, mmap) thresholds in bytes: ``_LEAN`` is distributed's
# MALLOC_TRIM_THRESHOLD_ for the worker processes it spawns and glibc's initial mmap threshold; ``_RELAXED`` is
# where glibc's own dynamic thresholds end up once large blocks have been freed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_LEAN = (64 << 10, 128 << 10)
_RELAXED = (64 << 20, 32 << 20)
_lean_lock = threading.Lock()
_lean_depth = 0

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


def _set_malloc_thresholds(trim: int, mmap: int) -> None:
    """Set glibc's trim and mmap thresholds; nothing elsewhere (macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, trim)
        libc.mallopt(_M_MMAP_THRESHOLD, mmap)
    except (OSError, AttributeError):
        pass


@contextmanager
def returning_freed_memory() -> Iterator[None]:
    """Within the block, memory this process frees goes back to the OS at once.

    The local cluster's worker is threads of this process, and each Dask task there allocates and frees
    multi-MB buffers. With glibc's defaults those soon come from per-thread heaps that fragment and stay
    resident: ~150 MB more peak RSS in the 1 GiB satellite mosaic benchmark. distributed prevents this only in
    the worker processes it spawns (``MALLOC_TRIM_THRESHOLD_``). Inside the block, buffers over 128 KiB are
    mapped and unmapped on their own and heaps are trimmed above 64 KiB, at the cost of page faults (~30 % more
    CPU in that mosaic). The setting is process-wide, and kept on it would make torch training about twice as
    slow, so on leaving the block the thresholds go to the top of glibc's own dynamic range (32 MiB mmap,
    64 MiB trim). Nested and concurrent blocks are counted; the last one out relaxes. No-op off Linux.
    """
    global _lean_depth
    with _lean_lock:
        _lean_depth += 1
        if _lean_depth == 1:
            _set_malloc_thresholds(*_LEAN)
    try:
        yield
    finally:
        with _lean_lock:
            _lean_depth -= 1
            if _lean_depth == 0:
                _set_malloc_thresholds(*_RELAXED)

"""Run a child process and poll the resident memory of its process tree: the benchmarks' shared meter."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path


def run_measured(cmd: list[str], *, poll: float = 0.05, **popen_kw) -> tuple[float, int, subprocess.CompletedProcess]:
    """Run ``cmd`` to the end; (wall-clock seconds, peak RSS in bytes of it and its children, the result)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_kw)
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        try:
            parent = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                rss = parent.memory_info().rss
                for child in parent.children(recursive=True):
                    try:
                        rss += child.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            peak[0] = max(peak[0], rss)
            done.wait(poll)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    return seconds, peak[0], subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def own_peak_rss_mb() -> float:
    """This process's peak RSS (MiB) since start or since a reset through ``/proc/self/clear_refs``: ``VmHWM``,
    which starts afresh at exec. Not ``ru_maxrss``: Linux carries the parent's peak over into a child started by
    vfork/posix_spawn, as subprocess does (a parent that had just generated the inputs made every child report
    ~516 MB)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10

"""A flow process killed after some stages: the rerun with the same run id reuses them and ends the same."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def tessera(*args: str, env: dict) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "tessera"
    return subprocess.Popen([str(exe), "run", "satellite", "--date", "2024-05-01", "--epochs", "1", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def test_killed_run_resumes_from_its_completed_stages(tmp_path: Path, served: dict) -> None:
    """The runs report to the session's Prefect server (each would otherwise start a temporary one, ~10 s);
    their results and cache records stay in their own PREFECT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TESSERA_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_API_URL=served["url"],
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    out = tmp_path / "data"
    run_dir = out / "satellite" / "runs" / "resumable"

    first = tessera("--out", str(out), "--run-id", "resumable", env=env)
    deadline = time.monotonic() + 180
    while not (run_dir / "normalization.json").exists():
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first run never reached the normalize stage"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the flow process and anything it started
    first.wait()
    assert not (run_dir / "classmap.tif").exists()

    again = tessera("--out", str(out), "--run-id", "resumable", env=env)
    log, _ = again.communicate(timeout=300)
    assert again.returncode == 0, log[-3000:]
    for stage in ("ingest scenes", "profile scenes", "mosaic scenes"):
        assert any(stage in line and "Cached" in line for line in log.splitlines()), (stage, log[-3000:])

    clean = tessera("--out", str(tmp_path / "clean"), "--run-id", "uninterrupted", env=env)
    clean_log, _ = clean.communicate(timeout=300)
    assert clean.returncode == 0, clean_log[-3000:]
    with rasterio.open(run_dir / "classmap.tif") as a, \
            rasterio.open(tmp_path / "clean" / "satellite" / "runs" / "uninterrupted" / "classmap.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())

"""The pytest plugin users test their pipelines with: its fixtures here, and from outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_tiny_inputs_run_through_every_pipeline(tessera_run, tessera_scenes, tessera_sequences, tessera_posts,
                                                 tessera_prices) -> None:
    runs = {
        "satellite": tessera_run("satellite", source="local", input=tessera_scenes["folder"],
                                 labels=tessera_scenes["labels"]),
        "genome": tessera_run("genome", input=tessera_sequences),
        "sentiment": tessera_run("sentiment", input=tessera_posts),
        "market": tessera_run("market", input=tessera_prices),
    }
    for domain, result in runs.items():
        assert result.exit_code == 0, (domain, result.error)
        counts = result.record["counts"]
        assert counts["records_in"] == counts["records_valid"] + counts["records_quarantined"], domain
        assert (result.dir / "report.html").exists(), domain


def test_a_tightened_suite_fails_the_gate_with_exit_code_3(tessera_run, tessera_sequences, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    suites = tmp_path / "expectations"
    shutil.copytree(ROOT / "expectations", suites)
    path = suites / "genome_sequences.json"
    suite = json.loads(path.read_text())
    suite["expectations"].append({"type": "expect_column_values_to_be_between",
                                  "kwargs": {"column": "length", "min_value": 300}, "meta": {}})
    path.write_text(json.dumps(suite))
    monkeypatch.setenv("TESSERA_EXPECTATIONS", str(suites))
    result = tessera_run("genome", input=tessera_sequences)
    assert result.exit_code == 3
    assert "expect_column_values_to_be_between(length)" in result.error
    assert result.record["status"] == "failed" and not result.record["quality"][0]["success"]


def test_the_plugin_works_from_outside_the_repository(tmp_path: Path) -> None:
    (tmp_path / "test_my_pipeline.py").write_text('''
def test_my_genome_run(tessera_run, tessera_sequences):
    result = tessera_run("genome", input=tessera_sequences)
    assert result.exit_code == 0, result.error
    assert result.record["counts"]["records_quarantined"] == 4
''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TESSERA_", "PYTEST_"))}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_pipeline.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout

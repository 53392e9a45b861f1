"""The pytest plugin users test their pipelines with: its fixtures here, and from outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.domains import domains

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_tiny_inputs_run_through_every_pipeline(tessera_run, tessera_example) -> None:
    for domain in domains():
        result = tessera_run(domain, **tessera_example(domain))
        assert result.exit_code == 0, (domain, result.error)
        counts = result.record["counts"]
        assert counts["records_in"] == counts["records_valid"] + counts["records_quarantined"], domain
        assert (result.dir / "report.html").exists(), domain
        assert result.record["parameters"]["input"], domain


def test_the_named_inputs_are_the_built_in_examples(tessera_scenes, tessera_sequences, tessera_posts,
                                                    tessera_prices) -> None:
    assert len(list(Path(tessera_scenes["folder"]).glob("S2_*.tif"))) > 4 and Path(tessera_scenes["labels"]).exists()
    assert Path(tessera_sequences).read_text().startswith(">")
    assert Path(tessera_posts).read_text().startswith("id,text,")
    assert Path(tessera_prices).read_text().startswith("date,symbol,")


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


def install_toy_domain(site: Path) -> Path:
    """tests/toy_domain.py as an installed distribution in ``site`` (the module and a dist-info folder naming it in
    the ``tessera.domains`` entry points), as ``pip install`` of a user's package leaves it."""
    site.mkdir()
    shutil.copy(ROOT / "tests" / "toy_domain.py", site / "toy_domain.py")
    info = site / "toy_domain-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-domain\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tessera.domains]\ntoy = toy_domain:DOMAIN\n")
    return site


def test_the_plugin_works_from_outside_the_repository(tmp_path: Path) -> None:
    """A user's test folder, and a domain of the user's own installed as a package: the plugin runs both, the CLI
    runs the user's domain and the deployments include it, with no file of tessera edited."""
    (tmp_path / "test_my_pipeline.py").write_text('''
import json
import os
import subprocess

from prefect.settings import PREFECT_API_URL


def test_my_genome_run(tessera_run, tessera_sequences):
    result = tessera_run("genome", input=tessera_sequences)
    assert result.exit_code == 0, result.error
    assert result.record["counts"]["records_quarantined"] == 4


def test_my_own_domain(tessera_run, tessera_example, tmp_path):
    from deployments.serve import build_deployments

    assert "toy" in {d.name for d in build_deployments()}
    assert tessera_run("toy", **tessera_example("toy")).record["metrics"] == {"words": 4}
    words = tmp_path / "words.txt"
    words.write_text("a b c d e f")
    done = subprocess.run(["tessera", "run", "toy", "--input", str(words), "--out", str(tmp_path), "--run-id", "cli"],
                          env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "toy/runs/cli/run.json").read_text())["metrics"] == {"words": 6}
''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "TESSERA_", "PYTEST_"))}
    site = install_toy_domain(tmp_path / "site")
    env.update(PREFECT_HOME=str(tmp_path / "prefect"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")])),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_pipeline.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 passed" in done.stdout

"""The domain registry: the four built in, and a fifth added through the ``tessera.domains`` entry points that the
CLI, the demo list, the deployments and the pytest plugin pick up without an edit of their own."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from flows import domains as registry
from flows.domains import Domain


@pytest.fixture
def with_toy(monkeypatch: pytest.MonkeyPatch):
    """The registry with tests/toy_domain.py's domain declared by an entry point, as an installed package would."""
    point = EntryPoint("toy", "toy_domain:DOMAIN", registry.GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.GROUP else [])
    registry.domains.cache_clear()
    yield registry.domains()
    monkeypatch.undo()
    registry.domains.cache_clear()


def test_the_four_built_in_domains_in_demo_order() -> None:
    assert list(registry.domains())[:4] == ["satellite", "genome", "sentiment", "market"]


def test_a_domain_from_an_entry_point_is_in_the_cli_and_runs(with_toy, tessera_prefect, tmp_path) -> None:
    from flows.cli import build_parser, main

    assert "toy" in with_toy and build_parser().parse_args(["run", "toy", "--words", "2"]).words == 2
    assert main(["run", "toy", "--words", "5", "--out", str(tmp_path), "--run-id", "t1"]) == 0
    run = json.loads((tmp_path / "toy" / "runs" / "t1" / "run.json").read_text())
    assert run["metrics"] == {"words": 5} and (tmp_path / "toy" / "runs" / "t1" / "report.html").exists()


def test_a_domain_from_an_entry_point_is_deployed_and_run_by_the_plugin(with_toy, tessera_run,
                                                                        tessera_example) -> None:
    from deployments.serve import build_deployments

    deployment = {d.name: d for d in build_deployments()}["toy"]
    assert deployment.entrypoint == "toy_domain.toy" and deployment.tags == ["toy"]
    assert not deployment.schedules
    result = tessera_run("toy")
    assert result.exit_code == 0 and result.record["metrics"] == {"words": 1}
    result = tessera_run("toy", **tessera_example("toy"))
    assert result.exit_code == 0 and result.record["metrics"] == {"words": 4}


def test_a_domain_name_must_be_a_python_name_and_unique(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="lowercase"):
        Domain("Toy-2", "x", flow="m:f", params="m:P")
    for value, error, match in (("toy_domain:TWIN", ValueError, "'genome' exists already"),
                                ("flows.domains:BUILT_IN", TypeError, "expected a flows.domains.Domain")):
        point = EntryPoint("bad", value, registry.GROUP)
        monkeypatch.setattr(registry, "entry_points", lambda group, point=point: [point])
        registry.domains.cache_clear()
        try:
            with pytest.raises(error, match=match):
                registry.domains()
        finally:
            registry.domains.cache_clear()

"""Deployments: each flow takes its parameter model, and a real server on a free loopback port (schedule,
trigger, schema enforcement, artifacts)."""

from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from pydantic import ValidationError

from flows.domains import domains
from flows.params import SatelliteParams

DEPLOYMENTS = {name: domain.deployment_name for name, domain in domains().items()}
PARAMS = {name: domain.load_params() for name, domain in domains().items()}
FLOWS = {name: domain.load_flow() for name, domain in domains().items()}


@pytest.mark.parametrize("domain", sorted(PARAMS))
def test_each_flow_takes_its_parameter_model_as_its_one_parameter(domain: str) -> None:
    from typing import get_type_hints

    fn = domains()[domain].load_flow().fn
    (name, parameter), = inspect.signature(fn).parameters.items()
    assert get_type_hints(fn)[name] is PARAMS[domain] and parameter.default == PARAMS[domain]()
    assert all(field.description for field in PARAMS[domain].model_fields.values())


def test_models_reject_unknown_choices_out_of_range_numbers_and_unknown_fields() -> None:
    for bad in ({"source": "ftp"}, {"epochs": 0}, {"change_threshold": 2}, {"date": "01/05/2024"}, {"epoch": 3}):
        with pytest.raises(ValidationError):
            SatelliteParams(**bad)
    assert SatelliteParams(epochs=2).model_dump()["epochs"] == 2


def test_each_deployment_form_is_its_parameter_model() -> None:
    from prefect.utilities.callables import parameter_schema

    from deployments.serve import build_deployments

    names = {d.name: d for d in build_deployments()}
    assert set(names) == set(DEPLOYMENTS.values()) | {"cleanup"}
    cleanup = names["cleanup"]
    assert cleanup.entrypoint == "flows.cleanup.cleanup" and cleanup.schedules[0].schedule.cron == "0 3 * * 0"
    for domain, model in PARAMS.items():
        deployment = names[DEPLOYMENTS[domain]]
        assert deployment.entrypoint == f"flows.{domain}.{domain}"
        schema = parameter_schema(FLOWS[domain]).model_dump()
        assert set(schema["properties"]) == {"params"}
        assert schema["properties"]["params"]["default"] == model().model_dump(mode="json")
        fields = schema["definitions"][model.__name__]["properties"]
        assert {name: spec.get("default") for name, spec in fields.items()} == model().model_dump(mode="json")
        assert fields["epochs"]["minimum"] == 1 and fields["epochs"]["description"]
        if "train" in fields:
            assert fields["train"]["enum"] == ["auto", "always", "never"]
    sat = parameter_schema(FLOWS["satellite"]).model_dump()["definitions"]["SatelliteParams"]["properties"]
    assert sat["source"]["enum"] == ["synthetic", "local", "sentinelhub", "stac"]
    assert sat["mosaic_method"]["enum"] == ["first", "median", "least-cloudy"]
    genome = parameter_schema(FLOWS["genome"]).model_dump()["definitions"]["GenomeParams"]["properties"]
    assert genome["model"]["enum"] == ["poscnn", "cnn1d", "kmer2d"]
    assert genome["padding"]["enum"] == ["right", "left", "centre"]


def _api(url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: url})


@pytest.mark.integration
@pytest.mark.slow
def test_every_pipeline_is_served_with_its_form_and_satellite_runs_on_its_cron(served_deployments) -> None:
    from prefect.utilities.callables import parameter_schema

    found = served_deployments
    assert set(found) == set(DEPLOYMENTS.values()) | {"cleanup"} >= {"satellite-monitoring", "genome", "market"}
    schedule = found["satellite-monitoring"].schedules[0].schedule
    assert schedule.cron == "0 6 * * *" and schedule.timezone == "UTC"
    assert not found["genome"].schedules
    for domain, name in DEPLOYMENTS.items():
        assert found[name].enforce_parameter_schema
        expected = parameter_schema(FLOWS[domain]).model_dump()
        served_schema = found[name].parameter_openapi_schema
        assert (served_schema["properties"], served_schema["definitions"]) == (expected["properties"],
                                                                               expected["definitions"])


@pytest.mark.integration
@pytest.mark.slow
def test_the_server_rejects_a_run_with_a_bad_choice(served, served_deployments) -> None:
    from prefect import get_client

    async def create(parameters: dict):
        async with get_client() as client:
            return await client.create_flow_run_from_deployment(served_deployments["satellite-monitoring"].id,
                                                                parameters=parameters)

    with _api(served["url"]), pytest.raises(Exception, match=r"params\.mosaic_method.*'mean' is not one of"):
        asyncio.run(create({"params": {"mosaic_method": "mean"}}))


@pytest.mark.integration
@pytest.mark.slow
def test_a_run_triggered_through_the_api_completes_with_its_artifacts(served, served_deployments) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    with _api(served["url"]):
        run = run_deployment("satellite/satellite-monitoring",
                             parameters={"params": {"date": "2024-05-01", "epochs": 2}}, timeout=240,
                             poll_interval=1)
        assert run.state.is_completed(), (run.state, served["log"].read_text()[-3000:])

        async def artifacts():
            async with get_client() as client:
                flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
                return {a.key for a in await client.read_artifacts(artifact_filter=flt) if a.key}

        keys = asyncio.run(artifacts())
    assert {"satellite-metrics", "satellite-report", "satellite-scenes-gate", "satellite-mosaic-gate"} <= keys
    records = [json.loads(path.read_text()) for path in (served["data"] / "satellite" / "runs").glob("*/run.json")]
    assert any(r["parameters"]["epochs"] == 2 and r["parameters"]["date"] == "2024-05-01" for r in records)


@pytest.mark.integration
@pytest.mark.slow
def test_the_cleanup_deployment_runs_on_the_server(served, served_deployments) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment

    before = sorted(served["data"].glob("*/runs/*"))
    with _api(served["url"]):
        run = run_deployment("cleanup/cleanup", parameters={"params": {"keep": 0, "older_than": None,
                                                                       "dry_run": True}},
                             timeout=120, poll_interval=1)
        assert run.state.is_completed(), (run.state, served["log"].read_text()[-3000:])

        async def artifacts():
            async with get_client() as client:
                flt = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
                return [a for a in await client.read_artifacts(artifact_filter=flt) if a.key == "cleanup"]

        found = asyncio.run(artifacts())
    assert found and found[0].data.startswith("would remove")
    assert sorted(served["data"].glob("*/runs/*")) == before  # a dry run removes nothing

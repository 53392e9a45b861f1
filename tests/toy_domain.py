"""A fifth domain as a user's package would add one: a flow, its parameter model (also its CLI options) and its
declaration, in one file, registered through the ``tessera.domains`` entry-point group (tests/test_domains.py)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import BaseModel, Field

from flows.common import pipeline_run
from flows.domains import Domain


class ToyParams(BaseModel):
    words: int = Field(3, ge=1, description="words to count when there is no input")
    input: str | None = Field(None, description="a text file whose words are counted")
    out: str | None = Field(None, description="data root")
    dask_address: str | None = Field(None, description="Dask scheduler")
    run_id: str | None = Field(None, description="run id")


def publish(run: dict) -> str:
    from tasks.reporting import Report

    report = Report("toy run")
    report.table(run["metrics"], caption="Metrics")
    return report.write(run["dir"])


@flow(name="toy")
def toy(params: ToyParams = ToyParams()) -> dict:
    with pipeline_run("toy", params, publish=publish) as run:
        run.metrics = {"words": len(Path(params.input).read_text().split()) if params.input else params.words}
    return run.to_dict()


def example(folder: Path) -> dict:
    (folder / "words.txt").write_text("one two three four\n")
    return {"input": str(folder / "words.txt")}


DOMAIN = Domain("toy", "counts words, to show a domain added from outside", flow="toy_domain:toy",
                params="toy_domain:ToyParams", tags=("toy",), fast={"words": 1}, example="toy_domain:example")

TWIN = Domain("genome", "a second genome", flow="toy_domain:toy", params="toy_domain:ToyParams")

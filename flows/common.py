"""What every flow does around its stages: open the run record and Dask, gate, and publish at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import BaseModel

from tasks.common import check_gate, gate_table
from tasks.compute import dask_client
from tasks.errors import BadInputError
from tasks.runs import RunRecord
from tasks.store import data_root
from tasks.tracking import track

log = logging.getLogger(__name__)


@contextmanager
def pipeline_run(flow: str, params: BaseModel, *, publish: Callable[[dict], str]) -> Iterator[RunRecord]:
    """A run folder and record, a Dask client for the stages, run.json and the report however the run ends;
    a run under a remote data root is uploaded there at the end. ``params`` has ``out``, ``run_id`` and
    ``dask_address`` (flows.params.RunOptions); with ``mlflow`` (or ``MLFLOW_TRACKING_URI``) the finished run is
    logged to MLflow too."""
    run = RunRecord.start(flow, params.model_dump(), out=params.out, run_id=params.run_id)
    try:
        with run.recording(), dask_client(params.dask_address):
            yield run
    except BaseException:
        _finish(run, publish, getattr(params, "mlflow", None), failed=True)
        raise
    _finish(run, publish, getattr(params, "mlflow", None), failed=False)


def _finish(run: RunRecord, publish: Callable[[dict], str], mlflow: str | None, *, failed: bool) -> None:
    try:
        publish(run.to_dict())
    except Exception:  # a broken report must not hide the run's own error
        log.exception("could not write the report of run %s", run.run_id)
    if (tracked := track(run.to_dict(), mlflow)) is not None:
        run.mlflow = tracked
        run.save()
    try:
        run.sync()
    except Exception:
        if not failed:
            raise
        log.exception("could not upload run %s", run.run_id)  # the run's own error comes first


@dataclass(frozen=True)
class Models:
    """Where a run's models live (a data root whose ``models/`` is the registry), the name it trains or scores
    under, and ``--train``."""

    root: str
    name: str | None
    mode: str


def models_for(params: BaseModel, run: RunRecord) -> Models:
    """The data root's registry with the run's ``--model-name`` and ``--train``; with ``--bundle``, a registry in the
    run folder holding the bundle's model as its champion, to score with and train nothing."""
    if not getattr(params, "bundle", None):
        return Models(str(data_root(params.out)), params.model_name, params.train)
    if params.train == "always":
        raise BadInputError("--bundle scores with the bundle's model and trains none; drop --train always")
    from models.bundle import install_bundle

    root = str(run.dir / "bundle")
    return Models(root, install_bundle(params.bundle, root), "never")


def gate(run: RunRecord, table_uri: str, suite: str, stage: str, **parameters: object) -> None:
    """Validate a stage's table against its suite (``parameters``: the run's limits the suite refers to),
    record the outcome with its warnings, stop the flow if a critical expectation failed."""
    run.quality.append(gate_table(table_uri, suite, stage, parameters or None))
    check_gate(run.quality[-1])

"""What the tasks of every domain share: the stage decorator, the quality gate and the quarantine table."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd
from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks.quality import publish_gate_artifact, raise_if_failed, validate_table, warning_messages
from tasks.runs import current_run
from tasks.store import read_parquet, write_parquet

QUARANTINE_COLUMNS = ["kind", "record", "reason"]


def stage(key: str, name: str) -> Callable[[Callable[..., Any]], Task]:
    """One stage of a run as a coarse Prefect task called ``name``: cached on its inputs and source code, so a
    resumed run skips what it finished, and recorded when it ends in run.json's ``stages[key]`` (its time and
    output URI)."""

    def record(task: Task, task_run: Any, state: Any) -> None:
        run = current_run()
        if run is not None:
            run.record_stage(key, task_run.total_run_time.total_seconds(), state.result())

    return task(name=name, cache_policy=INPUTS + TASK_SOURCE, persist_result=True, on_completion=[record])


@task(name="quality gate")
def gate_table(table_uri: str, suite: str, stage: str, parameters: dict | None = None) -> dict:
    """Validate a stored table against ``expectations/<suite>.json`` with the run's limits as suite parameters;
    publish the outcome and log each warning once."""
    result = validate_table(read_parquet(table_uri), suite, stage=stage, parameters=parameters)
    publish_gate_artifact(result)
    logger = get_run_logger()
    for line in warning_messages(result):
        logger.warning(line)
    return result


def check_gate(result: dict) -> dict:
    return raise_if_failed(result)


def save_quarantine(frames: list[pd.DataFrame], target: str | os.PathLike) -> str | None:
    """Append quarantined records (columns kind, record, reason) to the run's quarantine table."""
    frames = [f[QUARANTINE_COLUMNS] for f in frames if len(f)]
    if not frames:
        return None
    new = pd.concat(frames, ignore_index=True)
    try:
        new = pd.concat([read_parquet(target), new], ignore_index=True).drop_duplicates()
    except FileNotFoundError:
        pass
    return write_parquet(new, target)

"""Thin Prefect tasks shared by every domain: the quality gate and the quarantine table."""

from __future__ import annotations

import pandas as pd
from prefect import task

from tasks.quality import publish_gate_artifact, raise_if_failed, validate_table
from tasks.store import read_parquet, write_parquet

QUARANTINE_COLUMNS = ["kind", "record", "reason"]


@task(name="quality gate")
def gate_table(table_uri: str, suite: str, stage: str) -> dict:
    """Validate a stored table against ``expectations/<suite>.json``; publish the outcome; fail if it failed."""
    result = validate_table(read_parquet(table_uri), suite, stage=stage)
    publish_gate_artifact(result)
    return result


def check_gate(result: dict) -> dict:
    return raise_if_failed(result)


def save_quarantine(frames: list[pd.DataFrame], target: str) -> str | None:
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

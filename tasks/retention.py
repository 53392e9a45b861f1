"""Retention: which old run folders to remove, and removing them with the Prefect results that point into them.

A run is kept when it is one of the ``keep`` newest of its domain, younger than ``older_than_days``, the run that
trained a model's current champion, or the latest completed run of a satellite area (the next monitoring run
compares with it). Folders without a run.json (a run in progress, or one killed before its end) are never
touched. Prefect persists each stage's result (the resume cache) in its own storage folder; a result whose
content names a removed run folder goes with it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.registry import ModelRegistry
from tasks.runs import list_runs
from tasks.store import data_root, filesystem, glob, join, staging_root


@dataclass(frozen=True)
class RunVerdict:
    domain: str
    run_id: str
    uri: str
    started: str
    keep: bool
    why: str  # why it is kept, or "old" when it goes


def _champion_runs(root: str, records: list[dict]) -> set[str]:
    """Run ids whose trained model is the current champion of its name."""
    registry, champions = ModelRegistry(root), {}
    found = set()
    for record in records:
        model = record.get("model") or {}
        if not (model.get("trained") and model.get("name")):
            continue
        if model["name"] not in champions:
            champions[model["name"]] = registry.champion_version(model["name"])
        if champions[model["name"]] == model.get("version"):
            found.add(record["run_id"])
    return found


def _latest_of_each_area(records: list[dict]) -> set[str]:
    latest = {}
    for record in records:  # oldest first
        area = (record.get("monitor") or {}).get("area")
        if area and record.get("status") == "completed":
            latest[area] = record["run_id"]
    return set(latest.values())


def plan(out: str | None = None, *, keep: int, older_than_days: float | None = None,
         now: datetime | None = None) -> list[RunVerdict]:
    """A verdict for every finished run under the data root, oldest first within each domain."""
    root = data_root(out)
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=older_than_days) if older_than_days is not None else None
    domains = sorted({Path(uri).parts[-2] for uri in glob(join(root, "*", "runs"))})
    verdicts = []
    for domain in domains:
        records = list_runs(domain, out=root)
        newest = {r["run_id"] for r in records[len(records) - keep:]} if keep else set()
        champions, areas = _champion_runs(root, records), _latest_of_each_area(records)
        for record in records:
            run_id, started = record["run_id"], record.get("started") or ""
            young = cutoff is not None and started and datetime.fromisoformat(started) > cutoff
            why = ("one of the newest" if run_id in newest else "trained the champion" if run_id in champions
                   else "latest run of its area" if run_id in areas else "younger than the cutoff" if young
                   else "old")
            verdicts.append(RunVerdict(domain, run_id, join(root, domain, "runs", run_id), started, why != "old", why))
    return verdicts


def folder_size(uri: str) -> int:
    fs, path = filesystem(uri)
    return int(fs.du(path, total=True)) if fs.exists(path) else 0


def prefect_results_naming(folders: list[str], storage: str | os.PathLike | None = None) -> list[Path]:
    """The Prefect result files (under ``storage``, default Prefect's local storage path) whose content names one
    of ``folders``: the cached stage results of those runs."""
    if storage is None:
        from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

        storage = PREFECT_LOCAL_STORAGE_PATH.value()
    needles = [(str(folder).rstrip("/") + "/").encode() for folder in folders]
    if not needles or not Path(storage).is_dir():
        return []
    found = []
    for path in Path(storage).iterdir():
        try:
            payload = base64.b64decode(json.loads(path.read_text())["result"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if any(needle in payload for needle in needles):
            found.append(path)
    return found


def clean(out: str | None = None, *, keep: int, older_than_days: float | None = None, dry_run: bool = False,
          storage: str | os.PathLike | None = None, now: datetime | None = None) -> tuple[list[RunVerdict], int]:
    """Remove the runs :func:`plan` judges old, with their Prefect results (only measure them with ``dry_run``);
    the verdicts and the bytes freed."""
    verdicts = plan(out, keep=keep, older_than_days=older_than_days, now=now)
    gone = [v for v in verdicts if not v.keep]
    folders = [v.uri for v in gone] + [str(staging_root() / v.domain / v.run_id) for v in gone]  # remote runs' too
    results = prefect_results_naming(folders, storage) if gone else []
    freed = sum(folder_size(v.uri) for v in gone) + sum(p.stat().st_size for p in results)
    if not dry_run:
        for verdict in gone:
            fs, path = filesystem(verdict.uri)
            fs.rm(path, recursive=True)
        for result in results:
            result.unlink(missing_ok=True)
    return verdicts, freed


def summary(verdicts: list[RunVerdict], freed: int, *, dry_run: bool) -> str:
    """What a clean did (or would do), in a line: runs removed and kept, and why kept, and the space freed."""
    gone = sum(not v.keep for v in verdicts)
    reasons = {}
    for v in verdicts:
        if v.keep:
            reasons[v.why] = reasons.get(v.why, 0) + 1
    kept = ", ".join(f"{n} {why}" for why, n in reasons.items())
    verb = "would remove" if dry_run else "removed"
    return (f"{verb} {gone} run(s), {'would free' if dry_run else 'freed'} {freed / 1e6:.1f} MB; "
            f"kept {len(verdicts) - gone}" + (f" ({kept})" if kept else ""))

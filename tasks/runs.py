"""Run folders and run.json: where a run's outputs live, what it did, and uploading a remote run at the end."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.errors import exit_code_for
from tasks.results import Trained
from tasks.store import (
    StorageError,
    check_name,
    create_exclusive,
    data_root,
    filesystem,
    glob,
    is_remote,
    join,
    json_safe,
    local_path,
    now_iso,
    read_json,
    staging_root,
    write_json,
)


class run_file:
    """A file of the run folder, for the :class:`RunFiles` classes: on an instance its path, on the class itself
    (``RunFiles.record.name``) its file name."""

    def __init__(self, name: str, doc: str) -> None:
        self.name, self.__doc__ = name, f"``{name}``: {doc}"

    def __get__(self, files: RunFiles | None, owner: type) -> Path | run_file:
        return self if files is None else Path(files.dir) / self.name


@dataclass(frozen=True)
class RunFiles:
    """The files of a run folder (always local: a remote run is uploaded at its end), each named once: the stages
    write them and the reports read them through these names. Each domain adds its own in
    ``tasks/<domain>/files.py``."""

    dir: str | os.PathLike

    record = run_file("run.json", "what the run did (RunRecord)")
    report = run_file("report.html", "the report, its figures beside it")
    figures = run_file("figures", "the report's figures as PNG")
    quarantine = run_file("quarantine.parquet", "records kept out of the run, each with its reason")
    training = run_file("training.json", "the train stage's decision, metrics, baselines and history")
    evaluation = run_file("evaluation.parquet", "test-split predictions beside the truth")
    explanations = run_file("explanations.parquet", "what drove the predictions of a few test records")
    embeddings = run_file("embeddings.parquet", "the model's embeddings of test records, for the map of them")
    predictions = run_file("predictions.parquet", "the scored records")


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261124T143000Z-1a2b3c``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]



@dataclass
class RunRecord:
    """What one run did, written to ``run.json`` at the end whether it succeeded or failed."""

    flow: str
    run_id: str
    dir: Path
    parameters: dict = field(default_factory=dict)
    started: str = field(default_factory=now_iso)
    status: str = "running"
    finished: str | None = None
    counts: dict = field(default_factory=lambda: {"records_in": 0, "records_valid": 0, "records_quarantined": 0})
    quality: list = field(default_factory=list)
    stages: dict = field(default_factory=dict)
    model: dict | None = None
    metrics: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    monitor: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    mlflow: dict | None = None
    error: str | None = None
    exit_code: int = 0
    uri: str = ""
    synced: bool = False

    @classmethod
    def start(cls, flow: str, parameters: dict, *, out: str | None = None, run_id: str | None = None) -> RunRecord:
        """A run folder under the data root; for a remote root, a local staging folder that ``sync`` uploads."""
        run_id = check_name(run_id, "run id", "--run-id") if run_id else new_run_id()
        check_root(data_root(out))
        uri = join(data_root(out), flow, "runs", run_id)
        run_dir = staging_root() / flow / run_id if is_remote(uri) else local_path(uri)
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(flow=flow, run_id=run_id, dir=run_dir, parameters=parameters, uri=uri)

    def record_stage(self, name: str, seconds: float, result: Any) -> None:
        """A stage that ended: its time and its output URI under ``stages`` (tasks.common.stage calls this)."""
        output = getattr(result, "output", result if isinstance(result, str) else None)
        self.stages[name] = {"seconds": round(seconds, 3), "output": output}

    def record_training(self, trained: Trained) -> None:
        """The model the run trained or reused, its metrics and baselines, and any class too rare to learn."""
        self.model, self.metrics, self.baselines = trained.model, trained.metrics, trained.baselines
        if trained.rare_classes:
            self.inputs["rare_classes"] = trained.rare_classes

    def add_counts(self, records_in: int, records_valid: int, records_quarantined: int, **extra: int) -> None:
        if records_in != records_valid + records_quarantined:
            raise AssertionError(f"records lost: {records_in} in != {records_valid} + {records_quarantined}")
        self.counts.update(records_in=records_in, records_valid=records_valid,
                           records_quarantined=records_quarantined, **extra)

    def to_dict(self) -> dict:
        """The record as run.json holds it; ``dir`` is where the outputs are now (the staging folder of a
        remote run until ``sync``, its URI after)."""
        record = json_safe({
            "flow": self.flow, "run_id": self.run_id, "status": self.status,
            "started": self.started, "finished": self.finished, "parameters": self.parameters,
            "counts": self.counts, "quality": self.quality, "stages": self.stages, "model": self.model,
            "metrics": self.metrics, "baselines": self.baselines, "monitor": self.monitor, "inputs": self.inputs,
            "mlflow": self.mlflow, "error": self.error,
            "exit_code": self.exit_code, "dir": str(self.dir), "uri": self.uri or str(self.dir),
        })
        return _rebase(record, str(self.dir), self.uri) if self.synced else record

    def save(self) -> str:
        return write_json(self.to_dict(), RunFiles(self.dir).record)

    def sync(self) -> str:
        """Upload a remote run's staging folder to its URI, run.json last with every local path in it
        rewritten to the remote one; delete the staging folder if the run completed (a failed run keeps it, so
        ``--run-id`` can resume from its completed stages). Nothing to do for a local run."""
        if not is_remote(self.uri):
            return str(self.dir)
        fs, path = filesystem(self.uri)
        try:
            for file in sorted(p for p in self.dir.rglob("*") if p.is_file() and p.name != RunFiles.record.name):
                fs.put_file(str(file), f"{path}/{file.relative_to(self.dir).as_posix()}")
            write_json(_rebase(self.to_dict(), str(self.dir), self.uri), join(self.uri, RunFiles.record.name))
        except Exception as exc:
            raise StorageError(f"could not upload run {self.run_id} to {self.uri} ({exc}); its outputs are kept in "
                               f"{self.dir}: check the credentials and copy them there") from exc
        if self.status == "completed":
            shutil.rmtree(self.dir, ignore_errors=True)
        self.synced = True
        return self.uri

    @contextmanager
    def recording(self) -> Iterator[RunRecord]:
        """The current run within the block (:func:`current_run`); mark it completed or failed and write run.json
        however the block ends."""
        token = _CURRENT.set(self)
        try:
            yield self
            self.status = "completed"
        except BaseException as exc:
            self.status = "failed"
            self.error = str(exc) or type(exc).__name__
            self.exit_code = exit_code_for(exc)
            raise
        finally:
            _CURRENT.reset(token)
            self.finished = now_iso()
            self.save()


_CURRENT: ContextVar[RunRecord | None] = ContextVar("tessera_current_run", default=None)


def current_run() -> RunRecord | None:
    """The run being recorded in this context, if any."""
    return _CURRENT.get()


def list_runs(domain: str, *, out: str | None = None) -> list[dict]:
    """Every run.json of a domain under the data root (a folder or a URL), oldest first."""
    records = []
    for uri in glob(join(data_root(out), domain, "runs", "*", RunFiles.record.name)):
        try:
            records.append(read_json(uri))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(records, key=lambda r: r.get("started") or "")


def check_root(root: str) -> None:
    """Fail before any work when a remote data root cannot be written: leave a marker file there once."""
    if not is_remote(root):
        return
    try:
        create_exclusive(join(root, ".tessera"), b"a tessera data root\n")
    except Exception as exc:
        raise StorageError(f"{root}: cannot write to this data root ({exc}); create the bucket or fix --out / "
                           "TESSERA_DATA, and check the credentials (AWS_* variables, ~/.aws)") from exc


def _rebase(value: Any, old: str, new: str) -> Any:
    """Every string that starts with the folder ``old`` rewritten to start with ``new`` instead."""
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):].replace(os.sep, "/")
    return value



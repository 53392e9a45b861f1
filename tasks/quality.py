"""Quality gates: GX suites kept as JSON in expectations/, validated against pandas tables; quarantine."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from functools import lru_cache
from pathlib import Path

import pandas as pd

from tasks.errors import BadInputError, DataQualityError

_LOCK = threading.Lock()


def expectations_dir() -> Path:
    """Where suites live: ``TESSERA_EXPECTATIONS`` if set (a user's own suites), else the project's."""
    override = os.environ.get("TESSERA_EXPECTATIONS")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "expectations"


def load_suite(name: str) -> dict:
    """The suite ``<domain>_<stage>`` as a dict, as GX writes it with ``suite.to_json_dict()``."""
    path = expectations_dir() / f"{name}.json"
    if not path.exists():
        raise BadInputError(f"expectation suite {name!r} not found at {path}; add {path.name} to the folder")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{path}: not valid JSON ({exc}); fix the suite file") from exc


@lru_cache(maxsize=1)
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _observed(result: dict) -> object:
    if "observed_value" in result:
        return result["observed_value"]
    if "unexpected_count" in result:
        sample = list(result.get("partial_unexpected_list") or [])[:5]
        return (f"{result['unexpected_count']} unexpected ({result.get('unexpected_percent', 0):.1f}%)"
                + (f", e.g. {sample}" if sample else ""))
    return None


def _exception_message(info: dict | None) -> str | None:
    """GX 1.x keys exception info by metric id, or flat for some expectations."""
    if not info:
        return None
    if info.get("exception_message"):
        return info["exception_message"]
    for value in info.values():
        if isinstance(value, dict) and value.get("exception_message"):
            return value["exception_message"]
    return None


def validate_table(df: pd.DataFrame, suite_name: str, *, stage: str) -> dict:
    """Validate a table against a suite; return ``{"stage", "suite", "success", "failed": [...]}``."""
    import great_expectations as gx

    spec = load_suite(suite_name)
    spec = {k: v for k, v in spec.items() if k != "id"}
    spec["expectations"] = [{k: v for k, v in e.items() if k != "id"} for e in spec.get("expectations", [])]
    spec["name"] = f"{suite_name}-{uuid.uuid4().hex[:8]}"
    with _LOCK:
        context = _context()
        suite = context.suites.add(gx.ExpectationSuite(**spec))
        source = context.data_sources.add_pandas(f"src-{uuid.uuid4().hex[:8]}")
        batch = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
        validation = batch.get_batch(batch_parameters={"dataframe": df}).validate(suite)
        context.data_sources.delete(source.name)
        context.suites.delete(suite.name)
    failed = []
    for res in validation.results:
        if res.success:
            continue
        cfg = res.expectation_config
        failed.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column"),
            "observed": _observed(res.result or {}),
            "exception": _exception_message(res.exception_info),
        })
    return {"stage": stage, "suite": suite_name, "success": bool(validation.success), "failed": failed,
            "rows": len(df)}


def gate_message(result: dict) -> str:
    """One line naming the suite, each failed expectation and its observed value."""
    parts = []
    for f in result["failed"]:
        where = f"{f['expectation']}({f['column']})" if f.get("column") else f["expectation"]
        parts.append(f"{where} observed {f['observed'] if f['exception'] is None else f['exception']}")
    return (f"quality gate {result['suite']!r} failed at stage {result['stage']!r}: " + "; ".join(parts)
            + f" (suite: {expectations_dir() / (result['suite'] + '.json')})")


def raise_if_failed(result: dict) -> dict:
    if not result["success"]:
        raise DataQualityError(gate_message(result), result)
    return result


def publish_gate_artifact(result: dict) -> None:
    """A Prefect table artifact of the gate's outcome, when running inside a flow."""
    from tasks.evaluate import publish_table

    rows = [{"stage": result["stage"], "suite": result["suite"], "expectation": f["expectation"],
             "column": f["column"], "observed": str(f["observed"])} for f in result["failed"]]
    if not rows:
        rows = [{"stage": result["stage"], "suite": result["suite"], "expectation": "all passed",
                 "column": "", "observed": f"{result['rows']} rows"}]
    publish_table(f"{result['suite']}-gate", rows, f"Quality gate {result['suite']}")


def quarantine(df: pd.DataFrame, reasons: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (valid, quarantined); ``reasons`` holds a reason per faulty row and None elsewhere."""
    bad = reasons.notna().to_numpy()
    quarantined = df.loc[bad].copy()
    quarantined["reason"] = reasons[bad].astype(str).to_numpy()
    return df.loc[~bad].copy(), quarantined

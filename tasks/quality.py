"""Quality gates: GX suites kept as JSON in expectations/, validated against pandas tables; quarantine."""

from __future__ import annotations

import json
import logging
import os
import re
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


def _row_ids(df: pd.DataFrame, row_id: str | None, result: dict) -> list[str]:
    """Which rows failed, by the suite's ``meta.row_id`` column (scene, symbol ...): at most five, in order."""
    index = result.get("partial_unexpected_index_list") or []
    if not row_id or row_id not in df.columns or not index:
        return []
    return list(dict.fromkeys(str(v) for v in df[row_id].iloc[[i for i in index if i < len(df)]]))[:5]


def suite_parameters(spec: dict) -> set[str]:
    """The names a suite takes from the run as ``{"$PARAMETER": name}`` (GX suite parameters)."""
    return set(re.findall(r'"\$PARAMETER":\s*"([^"]+)"', json.dumps(spec)))


def validate_table(df: pd.DataFrame, suite_name: str, *, stage: str, parameters: dict | None = None) -> dict:
    """Validate a table against a suite; ``parameters`` fill the suite's ``$PARAMETER`` values (limits a run
    option sets). A failed expectation of severity critical goes to ``failed`` and fails the gate; a failed
    warning (or info) goes to ``warnings`` and the gate still passes.

    Returns ``{"stage", "suite", "success", "failed": [...], "warnings": [...], "rows", "parameters"}``.
    """
    import great_expectations as gx

    spec = load_suite(suite_name)
    parameters = dict(parameters or {})
    missing = sorted(suite_parameters(spec) - set(parameters))
    if missing:
        raise BadInputError(f"expectation suite {suite_name!r} uses $PARAMETER {', '.join(missing)}, which stage "
                            f"{stage!r} does not set (it sets: {', '.join(sorted(parameters)) or 'nothing'}); "
                            f"fix {expectations_dir() / (suite_name + '.json')}")
    spec = {k: v for k, v in spec.items() if k != "id"}
    spec["expectations"] = [{k: v for k, v in e.items() if k != "id"} for e in spec.get("expectations", [])]
    spec["name"] = f"{suite_name}-{uuid.uuid4().hex[:8]}"
    with _LOCK:
        context = _context()
        suite = context.suites.add(gx.ExpectationSuite(**spec))
        source = context.data_sources.add_pandas(f"src-{uuid.uuid4().hex[:8]}")
        batch = source.add_dataframe_asset("table").add_batch_definition_whole_dataframe("all")
        validation = batch.get_batch(batch_parameters={"dataframe": df}).validate(
            suite, expectation_parameters=parameters or None)
        context.data_sources.delete(source.name)
        context.suites.delete(suite.name)
    failed, warnings = [], []
    for res in validation.results:
        if res.success:
            continue
        cfg = res.expectation_config
        severity = getattr(cfg.severity, "value", cfg.severity) or "critical"
        entry = {
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column"),
            "observed": _observed(res.result or {}),
            "rows": _row_ids(df, spec.get("meta", {}).get("row_id"), res.result or {}),
            "exception": _exception_message(res.exception_info),
            "severity": severity,
            "notes": (cfg.meta or {}).get("notes"),
        }
        (failed if severity == "critical" else warnings).append(entry)
    return {"stage": stage, "suite": suite_name, "success": not failed, "failed": failed, "warnings": warnings,
            "rows": len(df), "parameters": parameters}


def _describe(f: dict) -> str:
    where = f"{f['expectation']}({f['column']})" if f.get("column") else f["expectation"]
    rows = f" in {', '.join(f['rows'])}" if f.get("rows") else ""
    return f"{where} observed {f['observed'] if f['exception'] is None else f['exception']}{rows}"


def gate_message(result: dict) -> str:
    """One line naming the suite, each failed critical expectation and its observed value."""
    return (f"quality gate {result['suite']!r} failed at stage {result['stage']!r}: "
            + "; ".join(_describe(f) for f in result["failed"])
            + f" (suite: {expectations_dir() / (result['suite'] + '.json')})")


def warning_messages(result: dict) -> list[str]:
    """One line per failed warning of a gate: what was observed and why it is only a warning."""
    return [f"quality gate {result['suite']!r} warning at stage {result['stage']!r}: {_describe(w)}"
            + (f" ({w['notes']})" if w.get("notes") else "") for w in result.get("warnings", [])]


def raise_if_failed(result: dict) -> dict:
    if not result["success"]:
        raise DataQualityError(gate_message(result), result)
    return result


def publish_gate_artifact(result: dict) -> None:
    """A Prefect table artifact of the gate's outcome, when running inside a flow."""
    from tasks.reporting import publish_table

    rows = [{"stage": result["stage"], "suite": result["suite"], "severity": f["severity"],
             "expectation": f["expectation"], "column": f["column"], "observed": str(f["observed"]),
             "notes": f.get("notes") or ""} for f in result["failed"] + result.get("warnings", [])]
    if not rows:
        rows = [{"stage": result["stage"], "suite": result["suite"], "severity": "", "expectation": "all passed",
                 "column": "", "observed": f"{result['rows']} rows", "notes": ""}]
    publish_table(f"{result['suite']}-gate", rows, f"Quality gate {result['suite']}")

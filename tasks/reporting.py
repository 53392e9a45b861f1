"""report.html, built section by section from a run's record and files, and the Prefect artifacts of a run."""

from __future__ import annotations

import base64
import html
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tasks.figures import plot_confusion, plot_loss, plot_roc_pr
from tasks.metrics import headline, metrics_table
from tasks.runs import RunFiles

log = logging.getLogger(__name__)


@dataclass
class Report:
    """An HTML report built section by section; figures are written as PNG files and embedded."""

    title: str
    parts: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame | list[dict] | dict, *, caption: str | None = None) -> None:
        if isinstance(df, dict):
            df = pd.DataFrame([{"name": k, "value": v} for k, v in df.items()])
        elif isinstance(df, list):
            df = pd.DataFrame(df)
        if caption:
            self.parts.append(f"<h3>{html.escape(caption)}</h3>")
        self.parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="-"))

    def figure(self, name: str, png: bytes, *, caption: str = "") -> None:
        self.figures[name] = png
        data = base64.b64encode(png).decode()
        self.parts.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                          f"<figcaption>{html.escape(caption or name)}</figcaption></figure>")

    def html(self) -> str:
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd;"
                 "text-align:right}th{background:#f4f4f4}img{max-width:100%}figure{display:inline-block;"
                 "margin:.5em}figcaption{color:#666;font-size:90%}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(self.parts) + "</body></html>")

    def write(self, run_dir: str | Path) -> str:
        from tasks.store import write_bytes

        run_dir = Path(run_dir)
        files = RunFiles(run_dir)
        for name, png in self.figures.items():
            write_bytes(png, files.figures / f"{name}.png")
        return write_bytes(self.html().encode(), files.report)


def artifact_key(text: str) -> str:
    """Prefect shows artifacts only with keys of lowercase letters, digits and dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def _in_prefect_run() -> bool:
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        return FlowRunContext.get() is not None or TaskRunContext.get() is not None
    except ImportError:
        return False


def publish_table(key: str, rows: list[dict] | pd.DataFrame, description: str) -> None:
    """A Prefect table artifact, when inside a flow or task run; a no-op elsewhere (unit tests)."""
    if not _in_prefect_run():
        return
    from prefect.artifacts import create_table_artifact

    if isinstance(rows, pd.DataFrame):
        rows = rows.astype(object).where(rows.notna(), None).to_dict("records")
    create_table_artifact(key=artifact_key(key), table=rows, description=description)


def publish_markdown(key: str, markdown: str, description: str) -> None:
    if not _in_prefect_run():
        return
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=artifact_key(key), markdown=markdown, description=description)


def run_report(run: dict) -> Report:
    """A report opening with the run's summary and its quality gates."""
    report = Report(f"tessera {run['flow']} run {run['run_id']} ({run['status']})")
    model = run.get("model") or {}
    report.table({"status": run["status"], **run["counts"], "model": model.get("version"),
                  "promoted": model.get("promoted"), "outputs scored with": model.get("scored_with"),
                  "error": run.get("error")}, caption="Summary")
    comparison = model.get("comparison") or {}
    if comparison.get("decision"):
        report.text(f"Model lifecycle: {comparison['decision']}"
                    + (f" (compared on {comparison['units']} {comparison['on']})" if comparison.get("on") else ""))
    if run["quality"]:
        report.table([{"stage": q["stage"], "suite": q["suite"], "outcome": gate_outcome(q), "rows": q.get("rows")}
                      for q in run["quality"]], caption="Quality gates")
        findings = [{"stage": q["stage"], "severity": f.get("severity", "critical"),
                     "expectation": f"{f['expectation']}({f['column'] or ''})",
                     "observed": f["observed"] if f.get("exception") is None else f["exception"],
                     "why this severity": f.get("notes") or ""}
                    for q in run["quality"] for f in q["failed"] + q.get("warnings", [])]
        if findings:
            report.table(findings, caption="What the gates found (critical stops the run; a warning is recorded "
                                           "and the run goes on)")
    inputs = run.get("inputs") or {}
    scalars = {k: v for k, v in inputs.items() if not isinstance(v, list | dict)}
    if scalars:
        report.table(scalars, caption="How the input was read")
    for name, value in inputs.items():
        if isinstance(value, list | dict) and value:
            report.table(value, caption=f"Found in the input: {name.replace('_', ' ')}")
    return report


def gate_outcome(result: dict) -> str:
    """"passed", "passed with N warnings" or "failed (N critical)"."""
    warnings = len(result.get("warnings", []))
    if not result["success"]:
        return f"failed ({len(result['failed'])} critical" + (f", {warnings} warnings)" if warnings else ")")
    return f"passed with {warnings} warning{'s' if warnings > 1 else ''}" if warnings else "passed"


def classification_section(report: Report, run: dict, class_names: list[str], *, heading: str) -> None:
    """Metrics next to the baselines, per-class figures, confusion matrix, ROC/PR and loss curves, from the
    run's ``evaluation.parquet`` (y_true, y_pred, p_<i>) and ``training.json``."""
    import json

    run_dir = Path(run["dir"])
    if run["metrics"]:
        report.heading(heading)
        report.table(metrics_table(run["metrics"], run["baselines"]), caption="Model vs baselines")
        report.table(pd.DataFrame(run["metrics"]["per_class"]).T.reset_index(names="class"), caption="Per class")
        if run["metrics"].get("cv"):
            report.table([{"metric": k, **{f: v[f] for f in ("mean", "std")}, "folds": ", ".join(
                f"{x:.3f}" for x in v["folds"])} for k, v in run["metrics"]["cv"].items()],
                caption="Cross-validation (stratified k-fold over train + validation)")
    files = RunFiles(run_dir)
    if files.evaluation.exists():
        ev = pd.read_parquet(files.evaluation)
        proba = ev[[c for c in ev.columns if c.startswith("p_")]].to_numpy()
        report.figure("confusion_matrix", plot_confusion(ev["y_true"], ev["y_pred"], class_names))
        report.figure("roc_pr", plot_roc_pr(ev["y_true"].to_numpy(), proba, class_names))
    training = files.training
    if training.exists():
        history = json.loads(training.read_text()).get("history") or {}
        if history.get("train_loss"):
            report.figure("loss", plot_loss(history))


def publish_run(run: dict, report: Report, *, metrics_description: str) -> str:
    """Write report.html, then publish the metrics table and a summary as Prefect artifacts
    (keys ``<flow>-metrics`` and ``<flow>-report``)."""
    import json

    uri = report.write(run["dir"])
    flow = run["flow"]
    if run["metrics"]:
        publish_table(f"{flow}-metrics", metrics_table(run["metrics"], run["baselines"]), metrics_description)
    lines = [f"# {flow.capitalize()} run {run['run_id']}", "", f"- status: **{run['status']}**",
             f"- records: {json.dumps(run['counts'])}", f"- report: `{uri}`"]
    lines += [f"- quality gate {q['suite']}: {gate_outcome(q)}" for q in run["quality"]]
    lines += [f"  - warning: {w['expectation']}({w['column'] or ''}) observed {w['observed']}"
              for q in run["quality"] for w in q.get("warnings", [])]
    if headline(run["metrics"] or {}):
        lines.append(f"- {headline(run['metrics'])}")
    publish_markdown(f"{flow}-report", "\n".join(lines), f"{flow.capitalize()} run summary")
    publish_figures(f"{flow}-figures", report, f"Every figure of the {flow} report")
    return uri


def publish_figures(key: str, report: Report, description: str) -> None:
    """The report's figures as one markdown artifact with the PNGs inline, so the UI shows them too."""
    if not report.figures:
        return
    parts = [f"### {name.replace('_', ' ')}\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
             for name, png in report.figures.items()]
    try:
        publish_markdown(key, "\n\n".join(parts), description)
    except Exception:  # figures are a convenience; report.html already holds them
        log.warning("could not publish the figures of %s as an artifact", key, exc_info=True)

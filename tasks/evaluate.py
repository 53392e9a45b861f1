"""Metrics next to their baselines, the plots a person looks at, report.html and Prefect artifacts."""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from tasks.runs import RunFiles

log = logging.getLogger(__name__)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None, *,
                           class_names: list[str] | None = None) -> dict:
    """accuracy, macro_f1, cohen_kappa, roc_auc (macro one-vs-rest) and per_class (the keys run.json holds), with
    average_precision (macro one-vs-rest) and specificity beside them.

    ``proba`` has one column per class, in the order of ``class_names`` (class i is label i).
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    n_classes = len(class_names) if class_names else int(max(y_true.max(), y_pred.max())) + 1
    names = class_names or [str(i) for i in range(n_classes)]
    labels = list(range(n_classes))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = [i for i in labels if (y_true == i).any()]
    negatives = len(y_true) - s
    specificity = [float(((y_true != i) & (y_pred != i)).sum() / negatives[i]) if negatives[i] else None
                   for i in labels]
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "cohen_kappa": float(skm.cohen_kappa_score(y_true, y_pred, labels=labels)),
        "roc_auc": None,
        "average_precision": None,
        "macro_specificity": _mean_or_none([specificity[i] for i in present if specificity[i] is not None]),
        "per_class": {names[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                 "specificity": specificity[i], "support": int(s[i])} for i in labels},
    }
    if proba is not None and len(present) >= 2:
        proba = np.asarray(proba, dtype=float)
        for i in present:
            out["per_class"][names[i]]["roc_auc"] = float(skm.roc_auc_score(y_true == i, proba[:, i]))
            out["per_class"][names[i]]["average_precision"] = float(
                skm.average_precision_score(y_true == i, proba[:, i]))
        if len(present) == 2 and n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
            out["average_precision"] = float(skm.average_precision_score(y_true == 1, proba[:, 1]))
        else:
            out["roc_auc"] = float(np.mean([out["per_class"][names[i]]["roc_auc"] for i in present]))
            out["average_precision"] = float(np.mean([out["per_class"][names[i]]["average_precision"]
                                                      for i in present]))
    return out


def _mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """rmse, mae and directional_accuracy (sign agreement of changes expressed as returns)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "directional_accuracy": float(np.mean(np.sign(y_true) == np.sign(y_pred))),
    }


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> bytes:
    cm = skm.confusion_matrix(y_true, y_pred, labels=list(range(len(class_names))))
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(class_names), 1 + 0.6 * len(class_names)))
    skm.ConfusionMatrixDisplay(cm, display_labels=class_names).plot(ax=ax, colorbar=False, cmap="Blues")
    ax.set_title("Confusion matrix (test split)")
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    return _png(fig)


def plot_roc_pr(y_true: np.ndarray, proba: np.ndarray, class_names: list[str]) -> bytes:
    """ROC and precision-recall curves, one line per class (one-vs-rest)."""
    fig, (roc_ax, pr_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for i, name in enumerate(class_names):
        positives = np.asarray(y_true) == i
        if positives.all() or not positives.any():
            continue
        skm.RocCurveDisplay.from_predictions(positives, proba[:, i], ax=roc_ax, name=name)
        skm.PrecisionRecallDisplay.from_predictions(positives, proba[:, i], ax=pr_ax, name=name)
    roc_ax.plot([0, 1], [0, 1], "k:", lw=1)
    roc_ax.set(title="ROC (one vs rest)", xlabel="false positive rate", ylabel="true positive rate")
    pr_ax.set(xlabel="recall", ylabel="precision")
    pr_ax.set_title("Precision-recall (one vs rest)")
    return _png(fig)


def plot_loss(history: dict) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("train_loss", "val_loss"):
        if history.get(key):
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", ms=3, label=key)
    if history.get("best_epoch"):
        ax.axvline(history["best_epoch"], color="grey", ls="--", lw=1, label="best epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("Training and validation loss")
    ax.legend()
    return _png(fig)


def plot_bars(values: dict[str, float], *, title: str, ylabel: str, threshold: float | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(values)
    heights = [values[n] if values[n] is not None else 0 for n in names]
    colors = ["tab:red" if threshold is not None and h > threshold else "tab:blue" for h in heights]
    ax.bar(names, heights, color=colors)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"threshold {threshold}")
        ax.legend()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _png(fig)


def plot_by_label(table: pd.DataFrame, panels: list[tuple[str, str, str]], *, bins: int = 30) -> bytes:
    """Histograms of ``table`` columns per label, one panel per (column, title, x label)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for label, group in table.groupby(table["label"].fillna("unlabelled")):
        for ax, (column, _, _) in zip(axes[0], panels, strict=True):
            ax.hist(group[column], bins=bins, alpha=0.5, label=str(label))
    for ax, (_, title, xlabel) in zip(axes[0], panels, strict=True):
        ax.set(title=title, xlabel=xlabel)
    axes[0][0].legend(fontsize=8)
    return _png(fig)


def metrics_table(metrics: dict, baselines: dict) -> pd.DataFrame:
    """One row per model (the model, then each baseline), scalar metrics as columns."""
    rows = [{"model": "model", **{k: v for k, v in metrics.items() if not isinstance(v, dict)}}]
    for name, values in baselines.items():
        rows.append({"model": name, **{k: v for k, v in values.items() if not isinstance(v, dict)}})
    return pd.DataFrame(rows)


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


def headline(metrics: dict) -> str | None:
    """The one line a person reads first: accuracy and macro F1, or RMSE and directional accuracy."""
    if "accuracy" in metrics:
        return f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
    if "rmse" in metrics:
        return f"RMSE {metrics['rmse']:.5f}, directional accuracy {metrics['directional_accuracy']:.3f}"
    return None


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

"""The genome run's report.html and its Prefect artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks import insight, insight_report
from tasks.figures import plot_by_label
from tasks.genome.files import GenomeFiles
from tasks.genome.synthetic import MOTIFS
from tasks.genome.training import motif_spans
from tasks.reporting import Report, classification_section, publish_run, run_report


def build_report(run: dict) -> Report:
    run_dir = Path(run["dir"])
    report = run_report(run)
    files = GenomeFiles(run_dir)
    if files.sequence_profile.exists():
        report.heading("Sequences")
        profile = pd.read_parquet(files.sequence_profile)
        report.figure("sequence_profile", plot_by_label(profile, [
            ("length", "Sequence length", "bases"), ("gc_content", "GC content", "fraction")]))
    if files.quarantine.exists():
        report.table(pd.read_parquet(files.quarantine).head(50), caption="Quarantined records")
    training = files.training
    class_names = json.loads(training.read_text())["class_names"] if training.exists() else []
    classification_section(report, run, class_names,
                                    heading="Evaluation on the test records (stratified split)")
    insight_report.insight_sections(report, run, class_names, slices={"length_bin": "sequence length"})
    _mistakes_and_motifs(report, run_dir, class_names)
    if files.predictions.exists():
        predictions = pd.read_parquet(files.predictions)
        report.heading("Predictions")
        report.text(f"{len(predictions)} windows scored; regions.bed has one line per window.")
        report.table(predictions.head(20), caption="First predictions")
    insight_report.deep_share_section(report, run_dir)
    insight_report.tuning_section(report, run_dir)
    return report


def _mistakes_and_motifs(report: Report, run_dir: Path, class_names: list[str]) -> None:
    files = GenomeFiles(run_dir)
    if files.evaluation.exists():
        evaluation = pd.read_parquet(files.evaluation)
        proba = evaluation[[c for c in evaluation.columns if c.startswith("p_")]].to_numpy()
        worst = evaluation.iloc[insight.confident_mistakes(evaluation["y_true"].to_numpy(), proba)]
        report.table(pd.DataFrame({"id": worst["id"], "true": [class_names[i] for i in worst["y_true"]],
                                   "predicted": [class_names[i] for i in worst["y_pred"]],
                                   "confidence": proba[worst.index].max(axis=1),
                                   "sequence": worst["sequence"].str.strip("-").str.slice(0, 80)}),
                     caption="Most confident mistakes (first 80 bases)")
    if not files.explanations.exists():
        return
    explained = pd.read_parquet(files.explanations)
    spans = [motif_spans(seq, MOTIFS) for seq in explained["sequence"]]
    report.heading("Why: per-base importance (integrated gradients)")
    inside = [v for row, found in zip(explained["importance"], spans, strict=True) for s, e, _ in found
              for v in row[s:e]]
    if inside:
        overall = float(np.mean(np.concatenate(explained["importance"].to_numpy())))
        verdict = ("the network looks where the motifs are" if np.mean(inside) > overall
                   else "the motifs do not stand out to the network")
        report.text(f"Mean importance inside the known motifs {np.mean(inside):.4f} against {overall:.4f} over all "
                    f"bases: {verdict}.")
    report.figure("sequence_importance", insight_report.plot_sequence_importance(explained, class_names, spans),
                  caption="Importance of each base for the predicted class; shaded: motifs (promoter boxes, NF-kB "
                          "site, splice donor) found with at most one mismatch")


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html and publish its metrics and summary as Prefect artifacts."""
    description = "Test-record metrics of the model and its baselines"
    return publish_run(run, build_report(run), metrics_description=description)

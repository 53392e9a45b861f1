"""The genome run's report.html and its Prefect artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task

from tasks import evaluate


def build_report(run: dict) -> evaluate.Report:
    run_dir = Path(run["dir"])
    report = evaluate.run_report(run)
    if (run_dir / "sequence_profile.parquet").exists():
        report.heading("Sequences")
        profile = pd.read_parquet(run_dir / "sequence_profile.parquet")
        report.figure("sequence_profile", evaluate.plot_by_label(profile, [
            ("length", "Sequence length", "bases"), ("gc_content", "GC content", "fraction")]))
    if (run_dir / "quarantine.parquet").exists():
        report.table(pd.read_parquet(run_dir / "quarantine.parquet").head(50), caption="Quarantined records")
    training = run_dir / "training.json"
    class_names = json.loads(training.read_text())["class_names"] if training.exists() else []
    evaluate.classification_section(report, run, class_names,
                                    heading="Evaluation on the test records (stratified split)")
    if (run_dir / "predictions.parquet").exists():
        predictions = pd.read_parquet(run_dir / "predictions.parquet")
        report.heading("Predictions")
        report.text(f"{len(predictions)} windows scored; regions.bed has one line per window.")
        report.table(predictions.head(20), caption="First predictions")
    return report


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html and publish its metrics and summary as Prefect artifacts."""
    description = "Test-record metrics of the model and its baselines"
    return evaluate.publish_run(run, build_report(run), metrics_description=description)

"""The genome run's report.html and its Prefect artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from prefect import task

from tasks import evaluate


def plot_sequence_profile(profile: pd.DataFrame) -> bytes:
    """Length and GC-content distributions per class."""
    fig, (len_ax, gc_ax) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, group in profile.groupby(profile["label"].fillna("unlabelled")):
        len_ax.hist(group["length"], bins=30, alpha=0.5, label=str(label))
        gc_ax.hist(group["gc_content"], bins=30, alpha=0.5, label=str(label))
    len_ax.set(title="Sequence length", xlabel="bases")
    gc_ax.set(title="GC content", xlabel="fraction")
    len_ax.legend(fontsize=8)
    return evaluate._png(fig)


def build_report(run: dict) -> evaluate.Report:
    run_dir = Path(run["dir"])
    report = evaluate.run_report(run)
    if (run_dir / "sequence_profile.parquet").exists():
        report.heading("Sequences")
        report.figure("sequence_profile", plot_sequence_profile(pd.read_parquet(run_dir / "sequence_profile.parquet")))
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

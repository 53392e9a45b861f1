"""The sentiment run's report.html (with misclassified posts) and its Prefect artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from prefect import task

from tasks import insight_report
from tasks.figures import plot_by_label
from tasks.reporting import Report, classification_section, publish_run, run_report
from tasks.sentiment.files import SentimentFiles


def misclassified(evaluation: pd.DataFrame, class_names: list[str], n: int = 15) -> pd.DataFrame:
    """The most confident mistakes first: these are the posts worth reading."""
    wrong = evaluation[evaluation["y_true"] != evaluation["y_pred"]].copy()
    proba = wrong[[c for c in wrong.columns if c.startswith("p_")]].to_numpy()
    wrong["confidence"] = proba.max(axis=1) if len(wrong) else []
    wrong = wrong.sort_values("confidence", ascending=False).head(n)
    return pd.DataFrame({"text": wrong["text"].str.slice(0, 160), "true": [class_names[i] for i in wrong["y_true"]],
                         "predicted": [class_names[i] for i in wrong["y_pred"]], "confidence": wrong["confidence"]})


def build_report(run: dict) -> Report:
    run_dir = Path(run["dir"])
    report = run_report(run)
    files = SentimentFiles(run_dir)
    if files.posts_profile.exists():
        report.heading("Posts")
        profile = pd.read_parquet(files.posts_profile)
        profile["length"] = profile["length"].clip(upper=300)
        report.figure("post_lengths", plot_by_label(
            profile, [("length", "Post length by label", "characters (clipped at 300)")], bins=40))
    if files.quarantine.exists():
        report.table(pd.read_parquet(files.quarantine)["reason"].value_counts().reset_index(),
                     caption="Quarantined posts by reason")
    training = files.training
    class_names = json.loads(training.read_text())["class_names"] if training.exists() else []
    classification_section(report, run, class_names, heading="Evaluation on the test posts")
    insight_report.insight_sections(report, run, class_names, slices={"tokens_bin": "post length (tokens)"})
    if files.evaluation.exists():
        report.table(misclassified(pd.read_parquet(files.evaluation), class_names),
                     caption="Most confident mistakes")
    if files.explanations.exists():
        explained = pd.read_parquet(files.explanations)
        report.heading("Why: per-token importance (linear part's share and the CNN's integrated gradients)")
        report.figure("token_importance", insight_report.plot_token_importance(explained, class_names),
                      caption="Importance of each token for the predicted class; the first posts are the most "
                              "confident mistakes")
    insight_report.deep_share_section(report, run_dir)
    insight_report.tuning_section(report, run_dir)
    return report


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html and publish its metrics and summary as Prefect artifacts."""
    description = "Test-post metrics of the hybrid text model and its baseline"
    return publish_run(run, build_report(run), metrics_description=description)

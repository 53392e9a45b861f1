"""The report sections of tasks/insight: calibration, operating point, uncertainty, error analysis, embeddings
and attribution figures, drawn from the files a train stage wrote."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, NullFormatter

from tasks import insight
from tasks.figures import png
from tasks.reporting import Report
from tasks.runs import RunFiles


def _proba(table: pd.DataFrame, prefix: str) -> np.ndarray:
    return table[sorted((c for c in table.columns if c.startswith(prefix)), key=lambda c: int(c.rsplit("_", 1)[1]))
                 ].to_numpy()


def plot_reliability(y: np.ndarray, panels: dict[str, np.ndarray], *, n_bins: int = 10) -> bytes:
    """Reliability diagrams (accuracy against confidence per bin, with the counts), one per set of probabilities."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    for ax, (name, proba) in zip(axes[0], panels.items(), strict=True):
        table = insight.reliability(y, proba, n_bins=n_bins)
        ece = insight.expected_calibration_error(y, proba, n_bins=n_bins)
        centres = (table["bin_low"] + table["bin_high"]) / 2
        ax.bar(centres, table["accuracy"].fillna(0), width=1 / n_bins, edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect calibration")
        ax.plot(table["confidence"], table["accuracy"], "o-", color="tab:red", ms=3, label="mean confidence")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top class)", ylabel="accuracy",
               title=f"{name}: ECE {ece:.3f}")
        ax.legend(fontsize=7, loc="upper left")
    return png(fig)


def plot_uncertainty(y: np.ndarray, y_pred: np.ndarray, uncertainty: np.ndarray) -> bytes:
    """Accuracy per uncertainty fifth, and the uncertainty of right against wrong predictions."""
    table = insight.accuracy_by_uncertainty(y, y_pred, uncertainty)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(table["bin"].astype(str), table["accuracy"], color="tab:blue")
    left.set(xlabel="uncertainty fifth (1 = least uncertain)", ylabel="accuracy", ylim=(0, 1),
             title="Accuracy against MC-dropout uncertainty")
    wrong = np.asarray(y) != np.asarray(y_pred)
    bins = np.linspace(0, max(float(uncertainty.max()), 1e-6), 30)
    for mask, label in ((~wrong, "right"), (wrong, "wrong")):
        if mask.any():
            right.hist(uncertainty[mask], bins=bins, alpha=0.6, density=True, label=label)
    right.set(xlabel="predictive entropy (nats)", ylabel="density", title="Uncertainty of right and wrong")
    right.legend()
    return png(fig)


def plot_embeddings(embedding: pd.DataFrame, class_names: list[str]) -> bytes:
    """PCA and t-SNE of the penultimate layer, coloured by true class; wrong predictions ringed."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    wrong = embedding["y_true"] != embedding["y_pred"]
    for ax, (a, b, title) in zip(axes, [("pca_1", "pca_2", "PCA"), ("tsne_1", "tsne_2", "t-SNE")], strict=True):
        shown = embedding[embedding[a].notna()]
        for i, name in enumerate(class_names):
            part = shown[shown["y_true"] == i]
            ax.scatter(part[a], part[b], s=6, alpha=0.6, label=name)
        miss = shown[wrong.loc[shown.index]]
        ax.scatter(miss[a], miss[b], s=18, facecolors="none", edgecolors="k", lw=0.5, label="misclassified")
        ax.set(title=f"{title} of the penultimate layer", xticks=[], yticks=[])
    axes[0].legend(fontsize=7, markerscale=2)
    return png(fig)


def plot_token_importance(rows: pd.DataFrame, class_names: list[str]) -> bytes:
    """One bar chart per post: each token's integrated-gradients importance for the predicted class."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.9 * len(rows)), squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], rows.iterrows(), strict=True):
        tokens, values = list(row["tokens"]), np.asarray(row["importance"], dtype=float)
        ax.bar(range(len(tokens)), values, color=np.where(values >= 0, "tab:green", "tab:red"))
        ax.set_xticks(range(len(tokens)), tokens, rotation=40, ha="right", fontsize=7)
        ax.set_title(f"true {class_names[row['y_true']]}, predicted {class_names[row['y_pred']]}", fontsize=8)
        ax.axhline(0, color="k", lw=0.5)
    fig.tight_layout()
    return png(fig)


def calibration_section(report: Report, run_dir: Path, metrics: dict) -> pd.DataFrame | None:
    """Calibration, operating point, uncertainty and error analysis from ``evaluation.parquet``; returns it."""
    path = RunFiles(run_dir).evaluation
    if not path.exists():
        return None
    table = pd.read_parquet(path)
    y, y_pred = table["y_true"].to_numpy(), table["y_pred"].to_numpy()
    report.heading("How far to trust each prediction")
    panels = {"model": _proba(table, "p_")}
    if any(c.startswith("raw_p_") for c in table.columns):
        panels = {"before calibration": _proba(table, "raw_p_"),
                  f"after {metrics.get('calibration', '')} calibration": panels["model"]}
    report.figure("reliability", plot_reliability(y, panels),
                  caption="Reliability on the test split (calibrators are fitted on the validation split)")
    point = metrics.get("operating_point")
    if point:
        where = "" if point["threshold"] is None else f" at {point['threshold']:.3f}"
        report.text(f"Operating point: {point['rule']}{where}; {point['reason']}. On the test split: accuracy "
                    f"{point['test']['accuracy']:.3f}, macro F1 {point['test']['macro_f1']:.3f}.")
    if "uncertainty" in table.columns:
        report.figure("uncertainty", plot_uncertainty(y, y_pred, table["uncertainty"].to_numpy()),
                      caption="Monte Carlo dropout: high-uncertainty predictions should be the wrong ones")
        summary = metrics.get("uncertainty") or {}
        report.table(summary, caption="Uncertainty as a detector of mistakes")
    return table


def error_section(report: Report, table: pd.DataFrame, class_names: list[str], slices: dict[str, str]) -> None:
    """The confusion pairs that dominate and metrics per slice (columns of the evaluation table)."""
    y, y_pred = table["y_true"].to_numpy(), table["y_pred"].to_numpy()
    report.heading("Error analysis")
    report.table(insight.confusion_pairs(y, y_pred, class_names), caption="Confusion pairs that dominate")
    for column, title in slices.items():
        if column in table.columns:
            report.table(insight.slice_metrics(y, y_pred, table[column]), caption=f"Metrics per {title}")


def embedding_section(report: Report, run_dir: Path, class_names: list[str]) -> None:
    path = RunFiles(run_dir).embeddings
    if path.exists():
        report.figure("embeddings", plot_embeddings(pd.read_parquet(path), class_names),
                      caption="Penultimate-layer embeddings of test samples")


def insight_sections(report: Report, run: dict, class_names: list[str], *, slices: dict[str, str]) -> None:
    """Calibration, operating point, uncertainty, error analysis and embeddings of a classification run."""
    run_dir = Path(run["dir"])
    table = calibration_section(report, run_dir, run.get("metrics") or {})
    if table is not None and class_names:
        error_section(report, table, class_names, slices)
        embedding_section(report, run_dir, class_names)


def plot_sequence_importance(rows: pd.DataFrame, class_names: list[str],
                             spans: list[list[tuple[int, int, str]]]) -> bytes:
    """One track per sequence: per-base importance for the predicted class, known motifs shaded."""
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 1.5 * len(rows)), squeeze=False)
    for ax, (_, row), found in zip(axes[:, 0], rows.iterrows(), spans, strict=True):
        values = np.asarray(row["importance"], dtype=float)
        ax.fill_between(range(len(values)), values, step="mid", color="tab:blue", lw=0)
        for start, end, name in found:
            ax.axvspan(start - 0.5, end - 0.5, color="tab:orange", alpha=0.3)
            ax.text(start, ax.get_ylim()[1], name, fontsize=6, va="top")
        ax.axhline(0, color="k", lw=0.4)
        ax.set_xlim(0, len(values))
        ax.set_title(f"{row['id']}: true {class_names[row['y_true']]}, predicted {class_names[row['y_pred']]}",
                     fontsize=8)
    axes[-1, 0].set_xlabel("position (bases)")
    fig.tight_layout()
    return png(fig)


def plot_grad_cam(chips: np.ndarray, cam: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                  class_names: list[str]) -> bytes:
    """Each chip in colour (percentile stretch) and its Grad-CAM for the centre pixel's predicted class."""
    fig, axes = plt.subplots(2, len(chips), figsize=(2.2 * len(chips), 4.6), squeeze=False)
    for i, (chip, heat) in enumerate(zip(chips, cam, strict=True)):
        rgb = np.moveaxis(chip, 0, -1).astype(float)
        low, high = np.percentile(rgb, [2, 98])
        rgb = np.clip((rgb - low) / max(high - low, 1e-6), 0, 1)
        centre = chip.shape[-1] // 2
        for ax in axes[:, i]:
            ax.imshow(rgb)
            ax.plot(centre, centre, "+", color="yellow", ms=10)
            ax.set(xticks=[], yticks=[])
        axes[1, i].imshow(heat, cmap="inferno", alpha=0.6)
        axes[0, i].set_title(f"true {class_names[y_true[i]]}\npred {class_names[y_pred[i]]}", fontsize=8)
    axes[0, 0].set_ylabel("chip")
    axes[1, 0].set_ylabel("Grad-CAM")
    fig.tight_layout()
    return png(fig)


def plot_cross_validation(cv: dict) -> bytes:
    """Each fold's score per metric (dots) with the mean and one standard deviation either side (bar)."""
    names = list(cv)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(names), 3.6))
    for i, name in enumerate(names):
        values = np.asarray(cv[name]["folds"], dtype=float)
        ax.errorbar(i + 0.12, cv[name]["mean"], yerr=cv[name]["std"], fmt="s", color="k", capsize=6, ms=6,
                    label="mean ± std" if i == 0 else None, zorder=3)
        ax.scatter(i - 0.12 + np.linspace(-0.08, 0.08, len(values)), values, color="tab:blue", s=18, alpha=0.8,
                   label="fold" if i == 0 else None, zorder=2)
    low = min(min(cv[n]["folds"]) for n in names)
    ax.set(xticks=range(len(names)), xticklabels=names, xlim=(-0.6, len(names) - 0.4),
           ylim=(min(0.0, low - 0.05) if low < 0.5 else max(0.0, low - 0.1), 1.0), ylabel="score",
           title=f"Cross-validation over {len(cv[names[0]]['folds'])} folds")
    ax.legend(fontsize=8, loc="lower left")
    return png(fig)


def plot_tuning(tuning: dict) -> bytes:
    """Each trial's validation score in the order tried, the best so far as a line, the chosen trial ringed; beside
    it the score against the learning rate when the search had one."""
    trials = tuning["trials"]
    number = np.array([t["trial"] for t in trials])
    score = np.array([t["score"] for t in trials], dtype=float)
    better = np.fmax.accumulate(score) if tuning["direction"] == "maximize" else np.fmin.accumulate(score)
    best = int(np.argmax(score) if tuning["direction"] == "maximize" else np.argmin(score))
    has_lr = all("lr" in t["values"] for t in trials)
    fig, axes = plt.subplots(1, 2 if has_lr else 1, figsize=(9.5 if has_lr else 5.5, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(number, score, "o", color="tab:blue", label="trial")
    ax.step(number, better, where="post", color="k", lw=1, label="best so far")
    ax.plot(number[best], score[best], "o", ms=13, mfc="none", mec="tab:red", label="chosen")
    ax.set(xlabel="trial", ylabel=tuning["metric"], title=f"{len(trials)} trials, scored on the validation split")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    if has_lr:
        lr = np.array([t["values"]["lr"] for t in trials], dtype=float)
        axes[0, 1].scatter(lr, score, color="tab:blue")
        axes[0, 1].scatter(lr[best], score[best], s=160, facecolors="none", edgecolors="tab:red")
        low, high = tuning["space"]["lr"][1:3]
        axes[0, 1].set(xscale="log", xlim=(low / 1.2, high * 1.2), xlabel="learning rate (the searched range)",
                       ylabel=tuning["metric"])
        axes[0, 1].xaxis.set_minor_formatter(NullFormatter())
    return png(fig)


def tuning_section(report: Report, run_dir: Path) -> None:
    """What --tune tried and chose, when the run tuned."""
    training = RunFiles(run_dir).training
    tuning = json.loads(training.read_text()).get("tuning") if training.exists() else None
    if not tuning:
        return
    report.heading("Tuning (--tune)")
    chosen = ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in tuning["chosen"].items())
    report.text(f"Optuna's TPE sampler tried {len(tuning['trials'])} settings of the search space, each trained on "
                f"the training split and scored by {tuning['metric']}; the test split was never used. Chosen: "
                f"{chosen}, which trained the model above.")
    report.figure("tuning", plot_tuning(tuning))
    report.table([{"trial": t["trial"], **t["values"], tuning["metric"]: t["score"], "seconds": t["seconds"]}
                  for t in tuning["trials"]], caption="Every trial")


def deep_share_section(report: Report, run_dir: Path) -> None:
    """How much of a hybrid model's CNN the run kept (genome ``mix``, sentiment ``beta``), and why, when it has one."""
    training = RunFiles(run_dir).training
    history = (json.loads(training.read_text()).get("history") or {}) if training.exists() else {}
    name = next((key for key in ("mix", "beta") if f"{key}_val" in history), None)
    if name is None:
        return
    chosen, scores = history[name], history[f"{name}_val"]
    report.heading("The CNN's share of the model")
    linear = "the one-hot logistic regression" if name == "mix" else "the TF-IDF logistic regression"
    verdict = ("no share gained more than twice its standard error over the linear part alone, so the model "
               "decides by its linear part" if not chosen else "the CNN's gain was clear of the noise")
    report.text(f"The model adds a CNN to a linear part fitted as {linear}; its share ({name}) was chosen on the "
                f"validation split: {name} = {chosen:g}, because {verdict}.")
    report.table([{name: float(share), "validation macro F1": v["macro_f1"], "gain over the linear part": v["gain"],
                   "2 x bootstrap SE": 2 * v["se"], "chosen": float(share) == chosen}
                  for share, v in scores.items()], caption=f"Every {name} tried")

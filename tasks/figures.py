"""The figures every report shares (confusion matrix, ROC/PR, loss, bars, distributions), as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def png(fig) -> bytes:
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
    return png(fig)


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
    return png(fig)


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
    return png(fig)


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
    return png(fig)


def plot_by_label(table: pd.DataFrame, panels: list[tuple[str, str, str]], *, bins: int = 30) -> bytes:
    """Histograms of ``table`` columns per label, one panel per (column, title, x label)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for label, group in table.groupby(table["label"].fillna("unlabelled")):
        for ax, (column, _, _) in zip(axes[0], panels, strict=True):
            ax.hist(group[column], bins=bins, alpha=0.5, label=str(label))
    for ax, (_, title, xlabel) in zip(axes[0], panels, strict=True):
        ax.set(title=title, xlabel=xlabel)
    axes[0][0].legend(fontsize=8)
    return png(fig)

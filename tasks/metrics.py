"""Metrics of a model next to its baselines: classification and regression scores, the table of both and
the headline a person reads first."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm


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


def metrics_table(metrics: dict, baselines: dict) -> pd.DataFrame:
    """One row per model (the model, then each baseline), scalar metrics as columns."""
    rows = [{"model": "model", **{k: v for k, v in metrics.items() if not isinstance(v, dict)}}]
    for name, values in baselines.items():
        rows.append({"model": name, **{k: v for k, v in values.items() if not isinstance(v, dict)}})
    return pd.DataFrame(rows)


def headline(metrics: dict) -> str | None:
    """The one line a person reads first: accuracy and macro F1, or RMSE and directional accuracy."""
    if "accuracy" in metrics:
        return f"accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}"
    if "rmse" in metrics:
        return f"RMSE {metrics['rmse']:.5f}, directional accuracy {metrics['directional_accuracy']:.3f}"
    return None

"""tasks/metrics.py: classification and regression metrics against hand-computed values, the metrics table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tasks.metrics import classification_metrics, metrics_table, regression_metrics


class TestClassificationMetrics:
    def test_perfect_prediction(self) -> None:
        y = np.array([0, 1, 2, 0, 1, 2])
        proba = np.eye(3)[y]
        out = classification_metrics(y, y, proba, class_names=["water", "forest", "urban"])
        assert out["accuracy"] == 1.0
        assert out["macro_f1"] == 1.0
        assert out["cohen_kappa"] == 1.0
        assert out["roc_auc"] == 1.0
        assert out["per_class"]["forest"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "specificity": 1.0,
                                              "support": 2, "roc_auc": 1.0, "average_precision": 1.0}

    def test_hand_computed_binary_case(self) -> None:
        # class 0: P=1, R=1/2, F1=2/3; class 1: P=2/3, R=1, F1=4/5; kappa=(0.75-0.5)/(1-0.5)
        y_true = np.array([0, 0, 1, 1])
        y_pred = np.array([0, 1, 1, 1])
        proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
        out = classification_metrics(y_true, y_pred, proba)
        assert out["accuracy"] == pytest.approx(0.75)
        assert out["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
        assert out["cohen_kappa"] == pytest.approx(0.5)
        assert out["roc_auc"] == pytest.approx(0.75)  # positives 0.4, 0.9 vs negatives 0.1, 0.6: 3 of 4 pairs
        # specificity: class 0's negatives (the 1s) are never called 0; one of class 1's negatives is called 1.
        # Both classes rank positives first, negative, positive, negative: AP = 1/2 * 1 + 1/2 * 2/3.
        assert out["per_class"]["0"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2,
                                                       "specificity": 1.0, "roc_auc": 0.75,
                                                       "average_precision": 5 / 6})
        assert out["per_class"]["1"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2,
                                                       "specificity": 0.5, "roc_auc": 0.75,
                                                       "average_precision": 5 / 6})
        assert out["macro_specificity"] == pytest.approx(0.75)
        assert out["average_precision"] == pytest.approx(5 / 6)

    def test_multiclass_roc_auc_is_macro_one_vs_rest(self) -> None:
        y_true = np.array([0, 0, 1, 1, 2, 2])
        proba = np.array([[0.8, 0.1, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3],
                          [0.3, 0.2, 0.5], [0.1, 0.3, 0.6], [0.1, 0.6, 0.3]])
        out = classification_metrics(y_true, proba.argmax(axis=1), proba)
        # one-vs-rest AUCs by pair counting: class 0 -> 8/8, class 1 -> 4/8, class 2 -> 6.5/8 (one tie)
        assert out["roc_auc"] == pytest.approx((1.0 + 0.5 + 0.8125) / 3)
        assert out["roc_auc"] == pytest.approx(roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))

    def test_per_class_support_counts(self) -> None:
        y_true = np.array([0, 0, 0, 1, 2, 2])
        y_pred = np.array([0, 0, 1, 1, 2, 0])
        out = classification_metrics(y_true, y_pred, class_names=["a", "b", "c"])
        assert {name: row["support"] for name, row in out["per_class"].items()} == {"a": 3, "b": 1, "c": 2}
        assert out["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
        assert out["per_class"]["c"]["recall"] == pytest.approx(0.5)

    def test_no_proba_means_no_roc_auc(self) -> None:
        out = classification_metrics(np.array([0, 1]), np.array([0, 1]))
        assert out["roc_auc"] is None

    def test_single_class_present_has_no_roc_auc(self) -> None:
        out = classification_metrics(np.array([1, 1]), np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]))
        assert out["roc_auc"] is None

    def test_absent_class_is_left_out_of_macro_scores(self) -> None:
        y_true = np.array([0, 0, 1, 1])
        proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
        out = classification_metrics(y_true, y_true, proba, class_names=["a", "b", "c"])
        assert out["macro_f1"] == 1.0
        assert out["roc_auc"] == 1.0
        assert out["per_class"]["c"]["support"] == 0

    def test_scalar_values_are_plain_python(self) -> None:
        out = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), np.eye(2)[[0, 1, 0]])
        assert all(type(out[k]) is float for k in ("accuracy", "macro_f1", "cohen_kappa", "roc_auc"))
        assert type(out["per_class"]["0"]["support"]) is int


class TestRegressionMetrics:
    def test_hand_computed_case(self) -> None:
        # errors -1, 0, 2, -2: mae 5/4, mse 9/4; signs agree for 3 of 4
        out = regression_metrics(np.array([1.0, -2.0, 3.0, -1.0]), np.array([2.0, -2.0, 1.0, 1.0]))
        assert out == pytest.approx({"rmse": 1.5, "mae": 1.25, "directional_accuracy": 0.75})

    def test_perfect_forecast(self) -> None:
        y = np.array([0.01, -0.02, 0.03])
        assert regression_metrics(y, y) == {"rmse": 0.0, "mae": 0.0, "directional_accuracy": 1.0}


class TestMetricsTable:
    def test_one_row_per_model_scalars_only(self) -> None:
        table = metrics_table({"accuracy": 0.9, "per_class": {"a": {}}},
                                       {"majority": {"accuracy": 0.5}, "logreg": {"accuracy": 0.8}})
        assert list(table["model"]) == ["model", "majority", "logreg"]
        assert list(table.columns) == ["model", "accuracy"]
        assert list(table["accuracy"]) == [0.9, 0.5, 0.8]

"""Metrics on hand-computed cases, PNG plots, report.html and Prefect artifacts outside a run."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tasks import evaluate

PNG = b"\x89PNG\r\n\x1a\n"


class TestClassificationMetrics:
    def test_perfect_prediction(self) -> None:
        y = np.array([0, 1, 2, 0, 1, 2])
        proba = np.eye(3)[y]
        out = evaluate.classification_metrics(y, y, proba, class_names=["water", "forest", "urban"])
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
        out = evaluate.classification_metrics(y_true, y_pred, proba)
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
        out = evaluate.classification_metrics(y_true, proba.argmax(axis=1), proba)
        # one-vs-rest AUCs by pair counting: class 0 -> 8/8, class 1 -> 4/8, class 2 -> 6.5/8 (one tie)
        assert out["roc_auc"] == pytest.approx((1.0 + 0.5 + 0.8125) / 3)
        assert out["roc_auc"] == pytest.approx(roc_auc_score(y_true, proba, multi_class="ovr", average="macro"))

    def test_per_class_support_counts(self) -> None:
        y_true = np.array([0, 0, 0, 1, 2, 2])
        y_pred = np.array([0, 0, 1, 1, 2, 0])
        out = evaluate.classification_metrics(y_true, y_pred, class_names=["a", "b", "c"])
        assert {name: row["support"] for name, row in out["per_class"].items()} == {"a": 3, "b": 1, "c": 2}
        assert out["per_class"]["a"]["precision"] == pytest.approx(2 / 3)
        assert out["per_class"]["c"]["recall"] == pytest.approx(0.5)

    def test_no_proba_means_no_roc_auc(self) -> None:
        out = evaluate.classification_metrics(np.array([0, 1]), np.array([0, 1]))
        assert out["roc_auc"] is None

    def test_single_class_present_has_no_roc_auc(self) -> None:
        out = evaluate.classification_metrics(np.array([1, 1]), np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]))
        assert out["roc_auc"] is None

    def test_absent_class_is_left_out_of_macro_scores(self) -> None:
        y_true = np.array([0, 0, 1, 1])
        proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
        out = evaluate.classification_metrics(y_true, y_true, proba, class_names=["a", "b", "c"])
        assert out["macro_f1"] == 1.0
        assert out["roc_auc"] == 1.0
        assert out["per_class"]["c"]["support"] == 0

    def test_scalar_values_are_plain_python(self) -> None:
        out = evaluate.classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 0]), np.eye(2)[[0, 1, 0]])
        assert all(type(out[k]) is float for k in ("accuracy", "macro_f1", "cohen_kappa", "roc_auc"))
        assert type(out["per_class"]["0"]["support"]) is int


class TestRegressionMetrics:
    def test_hand_computed_case(self) -> None:
        # errors -1, 0, 2, -2: mae 5/4, mse 9/4; signs agree for 3 of 4
        out = evaluate.regression_metrics(np.array([1.0, -2.0, 3.0, -1.0]), np.array([2.0, -2.0, 1.0, 1.0]))
        assert out == pytest.approx({"rmse": 1.5, "mae": 1.25, "directional_accuracy": 0.75})

    def test_perfect_forecast(self) -> None:
        y = np.array([0.01, -0.02, 0.03])
        assert evaluate.regression_metrics(y, y) == {"rmse": 0.0, "mae": 0.0, "directional_accuracy": 1.0}


class TestPlots:
    def test_confusion(self) -> None:
        png = evaluate.plot_confusion(np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1]), ["a", "b", "c"])
        assert png.startswith(PNG)

    def test_roc_pr_skips_classes_without_positives(self) -> None:
        y_true = np.array([0, 1, 0, 1])
        proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
        assert evaluate.plot_roc_pr(y_true, proba, ["a", "b", "c"]).startswith(PNG)

    def test_loss(self) -> None:
        png = evaluate.plot_loss({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "best_epoch": 2})
        assert png.startswith(PNG)

    def test_bars_with_threshold_and_missing_value(self) -> None:
        png = evaluate.plot_bars({"b02": 0.05, "b03": 0.4, "b04": None}, title="PSI", ylabel="psi", threshold=0.2)
        assert png.startswith(PNG)


class TestMetricsTable:
    def test_one_row_per_model_scalars_only(self) -> None:
        table = evaluate.metrics_table({"accuracy": 0.9, "per_class": {"a": {}}},
                                       {"majority": {"accuracy": 0.5}, "logreg": {"accuracy": 0.8}})
        assert list(table["model"]) == ["model", "majority", "logreg"]
        assert list(table.columns) == ["model", "accuracy"]
        assert list(table["accuracy"]) == [0.9, 0.5, 0.8]


class TestReport:
    def test_write_embeds_figures_and_saves_png_files(self, tmp_path: Path) -> None:
        png = evaluate.plot_loss({"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6]})
        report = evaluate.Report("Genome <run 1>")
        report.heading("Metrics")
        report.text("a & b")
        report.table({"accuracy": 0.91234})
        report.table([{"model": "model", "accuracy": 0.5}], caption="Baselines")
        report.table(pd.DataFrame({"x": [np.nan]}))
        report.figure("loss", png, caption="Loss curves")
        uri = report.write(tmp_path)
        assert uri == str(tmp_path / "report.html")
        html = (tmp_path / "report.html").read_text()
        assert "<title>Genome &lt;run 1&gt;</title>" in html
        assert "<p>a &amp; b</p>" in html
        assert "<h3>Baselines</h3>" in html
        assert "0.9123" in html
        assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html
        assert "<figcaption>Loss curves</figcaption>" in html
        assert (tmp_path / "figures" / "loss.png").read_bytes() == png


class TestArtifactKey:
    @pytest.mark.parametrize(("text", "key"), [
        ("Satellite Scenes Gate", "satellite-scenes-gate"),
        ("genome_sequences-gate", "genome-sequences-gate"),
        ("  Metrics: Model vs. Baseline!! ", "metrics-model-vs-baseline"),
        ("a--b__c", "a-b-c"),
        ("v2", "v2"),
    ])
    def test_lowercase_letters_digits_and_dashes(self, text: str, key: str) -> None:
        assert evaluate.artifact_key(text) == key


class TestPublish:
    def test_table_is_a_no_op_outside_a_prefect_run(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import prefect.artifacts

        def fail(**kwargs):
            raise AssertionError("an artifact was created outside a run")

        monkeypatch.setattr(prefect.artifacts, "create_table_artifact", fail)
        monkeypatch.setattr(prefect.artifacts, "create_markdown_artifact", fail)
        assert evaluate._in_prefect_run() is False
        assert evaluate.publish_table("Metrics", [{"a": 1}], "metrics") is None
        assert evaluate.publish_table("Metrics", pd.DataFrame({"a": [1.0, np.nan]}), "metrics") is None
        assert evaluate.publish_markdown("Notes", "# hi", "notes") is None

"""tasks/figures.py: every shared figure renders to a PNG, also on awkward input."""

from __future__ import annotations

import numpy as np

from tasks.figures import plot_bars, plot_confusion, plot_loss, plot_roc_pr

PNG = b"\x89PNG\r\n\x1a\n"


class TestPlots:
    def test_confusion(self) -> None:
        png = plot_confusion(np.array([0, 1, 2, 1]), np.array([0, 2, 2, 1]), ["a", "b", "c"])
        assert png.startswith(PNG)

    def test_roc_pr_skips_classes_without_positives(self) -> None:
        y_true = np.array([0, 1, 0, 1])
        proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.4, 0.1], [0.2, 0.7, 0.1]])
        assert plot_roc_pr(y_true, proba, ["a", "b", "c"]).startswith(PNG)

    def test_loss(self) -> None:
        png = plot_loss({"train_loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "best_epoch": 2})
        assert png.startswith(PNG)

    def test_bars_with_threshold_and_missing_value(self) -> None:
        png = plot_bars({"b02": 0.05, "b03": 0.4, "b04": None}, title="PSI", ylabel="psi", threshold=0.2)
        assert png.startswith(PNG)

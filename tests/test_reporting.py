"""tasks/reporting.py: report.html with its figures, artifact keys, and publishing outside a Prefect run."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.figures import plot_loss
from tasks.reporting import Report, _in_prefect_run, artifact_key, publish_markdown, publish_table

PNG = b"\x89PNG\r\n\x1a\n"


class TestReport:
    def test_write_embeds_figures_and_saves_png_files(self, tmp_path: Path) -> None:
        png = plot_loss({"train_loss": [1.0, 0.5], "val_loss": [1.0, 0.6]})
        report = Report("Genome <run 1>")
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
        assert artifact_key(text) == key


class TestPublish:
    def test_table_is_a_no_op_outside_a_prefect_run(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import prefect.artifacts

        def fail(**kwargs):
            raise AssertionError("an artifact was created outside a run")

        monkeypatch.setattr(prefect.artifacts, "create_table_artifact", fail)
        monkeypatch.setattr(prefect.artifacts, "create_markdown_artifact", fail)
        assert _in_prefect_run() is False
        assert publish_table("Metrics", [{"a": 1}], "metrics") is None
        assert publish_table("Metrics", pd.DataFrame({"a": [1.0, np.nan]}), "metrics") is None
        assert publish_markdown("Notes", "# hi", "notes") is None

"""Run folders and run.json: created under the data root, written however the run ends, listed oldest first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks import runs, store
from tasks.errors import BadInputError


class TestRunRecord:
    def test_start_creates_run_folder(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {"k": 3}, out=str(tmp_path), run_id="r1")
        assert record.dir == (tmp_path / "genome" / "runs" / "r1").resolve()
        assert record.dir.is_dir()
        assert record.status == "running"

    def test_new_run_ids_are_unique(self) -> None:
        ids = {runs.new_run_id() for _ in range(50)}
        assert len(ids) == 50

    def test_nan_and_inf_become_null(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        record.metrics = {"accuracy": float("nan"), "rmse": np.float64("inf"), "per_class": {"a": [np.nan, 1.0]}}
        assert record.to_dict()["metrics"] == {"accuracy": None, "rmse": None, "per_class": {"a": [None, 1.0]}}
        record.save()
        saved = json.loads((record.dir / "run.json").read_text())
        assert saved["metrics"] == {"accuracy": None, "rmse": None, "per_class": {"a": [None, 1.0]}}

    def test_recording_success_writes_completed(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {"k": 3}, out=str(tmp_path), run_id="r1")
        with record.recording():
            record.metrics["accuracy"] = 0.9
        saved = store.read_json(record.dir / "run.json")
        assert saved["status"] == "completed"
        assert saved["error"] is None
        assert saved["exit_code"] == 0
        assert saved["finished"] is not None
        assert saved["parameters"] == {"k": 3}
        assert saved["metrics"] == {"accuracy": 0.9}
        assert saved["counts"] == {"records_in": 0, "records_valid": 0, "records_quarantined": 0}

    def test_recording_bad_input_writes_failed_and_reraises(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(BadInputError, match="row 7"):
            with record.recording():
                raise BadInputError("reads.csv row 7: empty sequence; remove the row")
        saved = store.read_json(record.dir / "run.json")
        assert saved["status"] == "failed"
        assert saved["error"] == "reads.csv row 7: empty sequence; remove the row"
        assert saved["exit_code"] == 2
        assert saved["finished"] is not None

    def test_recording_unexpected_error_has_exit_code_1(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(KeyError):
            with record.recording():
                raise KeyError("x")
        saved = store.read_json(record.dir / "run.json")
        assert (saved["status"], saved["exit_code"]) == ("failed", 1)

    def test_add_counts_accepts_counts_that_add_up(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        record.add_counts(10, 7, 3, tiles=2)
        assert record.counts == {"records_in": 10, "records_valid": 7, "records_quarantined": 3, "tiles": 2}

    def test_add_counts_refuses_lost_records(self, tmp_path: Path) -> None:
        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(AssertionError, match="records lost: 10 in != 7 \\+ 2"):
            record.add_counts(10, 7, 2)
        assert record.counts["records_in"] == 0

    def test_record_stage_keeps_the_output_uri_of_a_result_or_a_string(self, tmp_path: Path) -> None:
        from tasks.results import Output

        record = runs.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        record.record_stage("encode", 1.23456, Output(output="run/encoded.zarr"))
        record.record_stage("gate", 0.5, "q.parquet")
        record.record_stage("noop", 0.1, 5)
        assert record.stages == {"encode": {"seconds": 1.235, "output": "run/encoded.zarr"},
                                 "gate": {"seconds": 0.5, "output": "q.parquet"},
                                 "noop": {"seconds": 0.1, "output": None}}


class TestListRuns:
    def test_ordered_by_started_not_by_folder_name(self, tmp_path: Path) -> None:
        for run_id, started in [("a", "2026-01-03T00:00:00+00:00"), ("b", "2026-01-01T00:00:00+00:00"),
                                ("c", "2026-01-02T00:00:00+00:00")]:
            record = runs.RunRecord.start("market", {}, out=str(tmp_path), run_id=run_id)
            record.started = started
            record.save()
        assert [r["run_id"] for r in runs.list_runs("market", out=str(tmp_path))] == ["b", "c", "a"]

    def test_unreadable_run_json_is_skipped(self, tmp_path: Path) -> None:
        runs.RunRecord.start("market", {}, out=str(tmp_path), run_id="good").save()
        broken = tmp_path / "market" / "runs" / "broken"
        broken.mkdir(parents=True)
        (broken / "run.json").write_text("{not json")
        assert [r["run_id"] for r in runs.list_runs("market", out=str(tmp_path))] == ["good"]

    def test_no_runs_yet(self, tmp_path: Path) -> None:
        assert runs.list_runs("market", out=str(tmp_path)) == []

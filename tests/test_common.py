"""tasks/common.py: a stage is a Prefect task that records itself in the run being recorded."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.common import stage
from tasks.results import Output
from tasks.runs import RunRecord, current_run


def test_a_stage_records_its_time_and_output_in_the_current_run_cached_or_not(tessera_prefect,
                                                                               tmp_path: Path) -> None:
    @stage("write", "write a table")
    def write(folder: str) -> Output:
        return Output(output=f"{folder}/table.parquet")

    @flow
    def pipeline(folder: str) -> dict:
        run = RunRecord.start("toy", {}, out=folder)
        with run.recording():
            assert current_run() is run
            write(folder)
        assert current_run() is None
        return run.stages

    first, again = pipeline(str(tmp_path)), pipeline(str(tmp_path))  # the second is a cache hit, recorded too
    for stages in (first, again):
        assert list(stages) == ["write"] and stages["write"]["output"] == f"{tmp_path}/table.parquet"
        assert stages["write"]["seconds"] >= 0


def test_a_stage_outside_a_recorded_run_just_runs(tessera_prefect) -> None:
    @stage("name", "name a table")
    def name(folder: str) -> Output:
        return Output(output=f"{folder}/table.parquet")

    @flow
    def bare(folder: str) -> str:
        return name(folder).output

    assert current_run() is None and bare("somewhere") == "somewhere/table.parquet"

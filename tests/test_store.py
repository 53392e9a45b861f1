"""Run folders, atomic writes, JSON / Parquet round-trips, run.json and COG output, on tiny data in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from tasks import store
from tasks.errors import BadInputError


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary siblings that atomic_path creates (``.<name>.tmp-<hex>``)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


class TestDataRoot:
    def test_argument_wins_over_environment(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_DATA", str(tmp_path / "env"))
        assert store.data_root(tmp_path / "arg") == str((tmp_path / "arg").resolve())

    def test_environment_wins_over_default(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_DATA", str(tmp_path / "env"))
        assert store.data_root() == str((tmp_path / "env").resolve())

    def test_default_is_data_in_working_directory(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("TESSERA_DATA", raising=False)
        monkeypatch.chdir(tmp_path)
        assert store.data_root() == str((tmp_path / "data").resolve())

    def test_relative_argument_is_made_absolute(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        root = store.data_root("out")
        assert Path(root).is_absolute()
        assert root == str((tmp_path / "out").resolve())

    def test_url_is_kept_as_given(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TESSERA_DATA", "s3://bucket/prefix/")
        assert store.data_root() == "s3://bucket/prefix"
        assert store.join(store.data_root(), "market", "runs") == "s3://bucket/prefix/market/runs"


class TestLocalPath:
    def test_file_uri_and_plain_path_agree(self, tmp_path: Path) -> None:
        assert store.local_path(f"file://{tmp_path}/a.json") == tmp_path / "a.json"
        assert store.local_path(tmp_path / "a.json") == tmp_path / "a.json"


class TestAtomicPath:
    def test_file_is_renamed_into_place(self, tmp_path: Path) -> None:
        target = tmp_path / "out.txt"
        with store.atomic_path(target) as tmp:
            assert tmp.parent == tmp_path
            assert tmp != target
            tmp.write_text("done")
            assert not target.exists()
        assert target.read_text() == "done"
        assert leftovers(tmp_path) == []

    def test_failed_file_block_leaves_nothing(self, tmp_path: Path) -> None:
        target = tmp_path / "out.txt"
        with pytest.raises(RuntimeError, match="crash"):
            with store.atomic_path(target) as tmp:
                tmp.write_text("half")
                raise RuntimeError("crash")
        assert not target.exists()
        assert leftovers(tmp_path) == []

    def test_failed_block_keeps_previous_output(self, tmp_path: Path) -> None:
        target = tmp_path / "out.txt"
        target.write_text("old")
        with pytest.raises(RuntimeError):
            with store.atomic_path(target) as tmp:
                tmp.write_text("new")
                raise RuntimeError("crash")
        assert target.read_text() == "old"
        assert leftovers(tmp_path) == []

    def test_directory_is_renamed_into_place(self, tmp_path: Path) -> None:
        target = tmp_path / "store.zarr"
        with store.atomic_path(target) as tmp:
            (tmp / "chunks").mkdir(parents=True)
            (tmp / "chunks" / "0").write_bytes(b"x")
        assert (target / "chunks" / "0").read_bytes() == b"x"
        assert leftovers(tmp_path) == []

    def test_directory_replaces_an_existing_one(self, tmp_path: Path) -> None:
        target = tmp_path / "store.zarr"
        (target / "stale").mkdir(parents=True)
        with store.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "fresh").write_text("1")
        assert sorted(p.name for p in target.iterdir()) == ["fresh"]

    def test_failed_directory_block_leaves_nothing(self, tmp_path: Path) -> None:
        target = tmp_path / "store.zarr"
        with pytest.raises(ValueError):
            with store.atomic_path(target) as tmp:
                (tmp / "a" / "b").mkdir(parents=True)
                (tmp / "a" / "b" / "c").write_bytes(b"half")
                raise ValueError("crash")
        assert not target.exists()
        assert leftovers(tmp_path) == []

    def test_creates_missing_parent_folders(self, tmp_path: Path) -> None:
        target = tmp_path / "a" / "b" / "c.txt"
        with store.atomic_path(target) as tmp:
            tmp.write_text("x")
        assert target.read_text() == "x"


class TestJson:
    def test_round_trip(self, tmp_path: Path) -> None:
        obj = {"a": 1, "b": [1.5, "x", None], "c": {"d": True}}
        uri = store.write_json(obj, tmp_path / "x.json")
        assert uri == str(tmp_path / "x.json")
        assert store.read_json(uri) == obj

    def test_numpy_scalars_and_paths_are_serialised(self, tmp_path: Path) -> None:
        obj = {"i": np.int64(3), "f": np.float32(0.5), "p": Path("/a/b")}
        store.write_json(obj, tmp_path / "x.json")
        assert store.read_json(tmp_path / "x.json") == {"i": 3, "f": 0.5, "p": "/a/b"}

    def test_unserialisable_value_raises_and_writes_nothing(self, tmp_path: Path) -> None:
        with pytest.raises(TypeError, match="not JSON serialisable"):
            store.write_json({"x": object()}, tmp_path / "x.json")
        assert list(tmp_path.iterdir()) == []

    def test_nan_becomes_null(self, tmp_path: Path) -> None:
        store.write_json({"x": float("nan"), "y": np.float64("nan")}, tmp_path / "x.json")
        assert store.read_json(tmp_path / "x.json") == {"x": None, "y": None}


class TestParquet:
    def test_round_trip(self, tmp_path: Path) -> None:
        df = pd.DataFrame({"id": ["a", "b", "c"], "value": [1.0, np.nan, 3.5], "n": [1, 2, 3]})
        uri = store.write_parquet(df, tmp_path / "t.parquet")
        pd.testing.assert_frame_equal(store.read_parquet(uri), df)

    def test_index_is_dropped(self, tmp_path: Path) -> None:
        df = pd.DataFrame({"v": [1, 2]}, index=[10, 20])
        back = store.read_parquet(store.write_parquet(df, tmp_path / "t.parquet"))
        assert list(back.index) == [0, 1]
        assert list(back.columns) == ["v"]


class TestRunRecord:
    def test_start_creates_run_folder(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {"k": 3}, out=str(tmp_path), run_id="r1")
        assert record.dir == (tmp_path / "genome" / "runs" / "r1").resolve()
        assert record.dir.is_dir()
        assert record.status == "running"

    def test_new_run_ids_are_unique(self) -> None:
        ids = {store.new_run_id() for _ in range(50)}
        assert len(ids) == 50

    def test_nan_and_inf_become_null(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        record.metrics = {"accuracy": float("nan"), "rmse": np.float64("inf"), "per_class": {"a": [np.nan, 1.0]}}
        assert record.to_dict()["metrics"] == {"accuracy": None, "rmse": None, "per_class": {"a": [None, 1.0]}}
        record.save()
        saved = json.loads((record.dir / "run.json").read_text())
        assert saved["metrics"] == {"accuracy": None, "rmse": None, "per_class": {"a": [None, 1.0]}}

    def test_recording_success_writes_completed(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {"k": 3}, out=str(tmp_path), run_id="r1")
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
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(BadInputError, match="row 7"):
            with record.recording():
                raise BadInputError("reads.csv row 7: empty sequence; remove the row")
        saved = store.read_json(record.dir / "run.json")
        assert saved["status"] == "failed"
        assert saved["error"] == "reads.csv row 7: empty sequence; remove the row"
        assert saved["exit_code"] == 2
        assert saved["finished"] is not None

    def test_recording_unexpected_error_has_exit_code_1(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(KeyError):
            with record.recording():
                raise KeyError("x")
        saved = store.read_json(record.dir / "run.json")
        assert (saved["status"], saved["exit_code"]) == ("failed", 1)

    def test_add_counts_accepts_counts_that_add_up(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        record.add_counts(10, 7, 3, tiles=2)
        assert record.counts == {"records_in": 10, "records_valid": 7, "records_quarantined": 3, "tiles": 2}

    def test_add_counts_refuses_lost_records(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        with pytest.raises(AssertionError, match="records lost: 10 in != 7 \\+ 2"):
            record.add_counts(10, 7, 2)
        assert record.counts["records_in"] == 0

    def test_stage_records_seconds_and_output(self, tmp_path: Path) -> None:
        record = store.RunRecord.start("genome", {}, out=str(tmp_path), run_id="r1")
        assert record.stage("encode", lambda x: f"{x}/encoded.zarr", "run") == "run/encoded.zarr"
        record.stage("gate", lambda: {"output": "q.parquet", "rows": 3})
        record.stage("noop", lambda: 5)
        assert record.stages["encode"]["output"] == "run/encoded.zarr"
        assert record.stages["gate"]["output"] == "q.parquet"
        assert record.stages["noop"]["output"] is None
        assert record.stages["encode"]["seconds"] >= 0


class TestListRuns:
    def test_ordered_by_started_not_by_folder_name(self, tmp_path: Path) -> None:
        for run_id, started in [("a", "2026-01-03T00:00:00+00:00"), ("b", "2026-01-01T00:00:00+00:00"),
                                ("c", "2026-01-02T00:00:00+00:00")]:
            record = store.RunRecord.start("market", {}, out=str(tmp_path), run_id=run_id)
            record.started = started
            record.save()
        assert [r["run_id"] for r in store.list_runs("market", out=str(tmp_path))] == ["b", "c", "a"]

    def test_unreadable_run_json_is_skipped(self, tmp_path: Path) -> None:
        store.RunRecord.start("market", {}, out=str(tmp_path), run_id="good").save()
        broken = tmp_path / "market" / "runs" / "broken"
        broken.mkdir(parents=True)
        (broken / "run.json").write_text("{not json")
        assert [r["run_id"] for r in store.list_runs("market", out=str(tmp_path))] == ["good"]

    def test_no_runs_yet(self, tmp_path: Path) -> None:
        assert store.list_runs("market", out=str(tmp_path)) == []


class TestWriteCog:
    transform = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_000.0)

    def class_map(self, *, lazy: bool = False) -> xr.DataArray:
        values = (np.arange(40 * 24) % 7).astype("uint8").reshape(40, 24)
        x = 500_000.0 + 5.0 + 10.0 * np.arange(24)
        y = 5_000_000.0 - 5.0 - 10.0 * np.arange(40)
        da = xr.DataArray(values, dims=("y", "x"), coords={"y": y, "x": x})
        da = da.rio.write_crs("EPSG:32632").rio.write_transform(self.transform)
        return da.chunk({"y": 16, "x": 16}) if lazy else da

    def test_grid_and_values_are_preserved(self, tmp_path: Path) -> None:
        da = self.class_map()
        uri = store.write_cog(da, tmp_path / "classes.tif")
        assert uri == str(tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.transform == self.transform
            assert src.crs.to_epsg() == 32632
            assert (src.height, src.width) == (40, 24)
            np.testing.assert_array_equal(src.read(1), da.values)

    def test_nodata_set_on_the_array_is_kept(self, tmp_path: Path) -> None:
        uri = store.write_cog(self.class_map().rio.write_nodata(255), tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.nodata == 255

    def test_nodata_argument_is_written(self, tmp_path: Path) -> None:
        uri = store.write_cog(self.class_map(), tmp_path / "classes.tif", nodata=255)
        with rasterio.open(uri) as src:
            assert src.nodata == 255

    def test_layout_is_cog(self, tmp_path: Path) -> None:
        uri = store.write_cog(self.class_map(), tmp_path / "classes.tif")
        with rasterio.open(uri) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert src.profile["tiled"]

    def test_dask_input_is_written_and_no_staging_files_remain(self, tmp_path: Path) -> None:
        da = self.class_map(lazy=True)
        store.write_cog(da, tmp_path / "classes.tif")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.tif"]
        with rasterio.open(tmp_path / "classes.tif") as src:
            np.testing.assert_array_equal(src.read(1), da.values)

    def test_layers_of_one_computation_compute_each_block_once(self, tmp_path: Path) -> None:
        import dask

        calls = []

        def score(block: np.ndarray) -> np.ndarray:
            calls.append(block.shape)
            return np.stack([block, block * 2]).astype("float32")

        base = self.class_map(lazy=True)
        both = base.data.map_blocks(score, new_axis=0, chunks=((2,),) + base.data.chunks,
                                    meta=np.array((), dtype="float32"))
        first, second = (base.copy(data=both[i]) for i in range(2))
        with dask.config.set(scheduler="synchronous"):
            written = store.write_cogs({str(tmp_path / "a.tif"): (first, None), str(tmp_path / "b.tif"): (second, -1)},
                                       batch=2)
        assert written == [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
        assert len(calls) == len(base.data.chunks[0]) * len(base.data.chunks[1]) == 6
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "b.tif"]
        with rasterio.open(tmp_path / "b.tif") as src:
            np.testing.assert_array_equal(src.read(1), base.values * 2)
            assert src.nodata == -1

    def test_layers_on_different_chunks_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="same shape and chunks"):
            store.write_cogs({str(tmp_path / "a.tif"): (self.class_map(lazy=True), None),
                              str(tmp_path / "b.tif"): (self.class_map(lazy=True).chunk({"y": 8}), None)})
        assert list(tmp_path.iterdir()) == []

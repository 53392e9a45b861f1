"""Run folders, atomic writes, JSON / Parquet round-trips, run.json and COG output, on tiny data in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers the .rio accessor)

from tasks import store


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


class TestReadParquet:
    @pytest.mark.parametrize("batch_rows", [1, 7, 1 << 16])
    def test_batched_read_equals_pandas_for_every_kind_of_column(self, tmp_path: Path, batch_rows: int) -> None:
        n = 50
        table = pd.DataFrame({
            "i8": np.arange(n, dtype=np.int8), "u32": np.arange(n, dtype=np.uint32), "f32": np.ones(n, np.float32),
            "f64": np.where(np.arange(n) % 9 == 0, np.nan, 1.5), "ts": pd.date_range("2020", periods=n, freq="h"),
            "tz": pd.date_range("2020", periods=n, freq="h", tz="UTC"),
            "s": pd.Series([f"é{i % 7}" * (i % 3) for i in range(n)], dtype="str"),
            "s_null": pd.Series([None if i % 5 == 0 else str(i) for i in range(n)], dtype="str"),
            "cat": pd.Categorical(np.array(["a", "b"])[np.arange(n) % 2]), "flag": np.arange(n) % 2 == 0,
            "i64_na": pd.array(range(n), dtype="Int64"),
        })
        for frame in (table, table.iloc[:0]):
            frame.to_parquet(tmp_path / "t.parquet", index=False, row_group_size=16)
            for columns in (None, ["s", "ts", "f32"]):
                pd.testing.assert_frame_equal(
                    store.read_parquet(tmp_path / "t.parquet", columns=columns, batch_rows=batch_rows),
                    pd.read_parquet(tmp_path / "t.parquet", columns=columns), check_exact=True)
        table.set_index("s").to_parquet(tmp_path / "i.parquet")
        pd.testing.assert_frame_equal(store.read_parquet(tmp_path / "i.parquet", batch_rows=batch_rows),
                                      pd.read_parquet(tmp_path / "i.parquet"))

"""URIs and files: the data root, local or fsspec paths, atomic writes, JSON, Parquet (read in Arrow batches) and
Zarr. Run folders and run.json are in tasks/runs.py, the COG writer in tasks/cog.py."""

from __future__ import annotations

import glob as _glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import BadInputError


def data_root(out: str | os.PathLike | None = None) -> str:
    """The data root as a URI: ``--out``, else ``TESSERA_DATA``, else ``./data``.

    A local folder comes back absolute; an fsspec URL (``s3://bucket/prefix``, ``gcs://...``) as given.
    """
    text = str(out or os.environ.get("TESSERA_DATA") or "data")
    if is_remote(text):
        return text.rstrip("/")
    return str(local_path(text).expanduser().resolve())


def is_remote(uri: str | os.PathLike) -> bool:
    """True for an fsspec URL other than ``file://`` (``s3://``, ``gcs://``, ``memory://`` ...)."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` for a local path or a URL (``Path`` would fold the ``//`` of a URL)."""
    if is_remote(base):
        return "/".join([str(base).rstrip("/"), *(str(p).strip("/") for p in parts)])
    return str(local_path(base).joinpath(*parts))


def filesystem(uri: str | os.PathLike) -> tuple[Any, str]:
    """The fsspec filesystem of a URI and the path within it; credentials come from the usual places
    (``AWS_*`` variables, ``~/.aws``, fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>`` variables)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(str(uri))
    except ImportError as exc:
        raise StorageError(f"{uri}: no filesystem for this URL ({exc}); install its fsspec package, "
                           "e.g. pip install 'tessera[s3]' for s3:// URLs") from exc


class StorageError(BadInputError):
    """A data root or input URL that cannot be read or written."""


NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"


def check_name(value: str, what: str, option: str) -> str:
    """``value`` when it is safe as one part of a path (letters, digits, '.', '_', '-', no leading dot, at most
    128 characters): run ids, model names and versions become folder names, so ``../x`` or ``/x`` must never
    reach the file system."""
    if not isinstance(value, str) or not re.fullmatch(NAME_PATTERN, value):
        raise BadInputError(f"{what} {value!r} is not a valid name: use letters, digits, '.', '_' and '-', no "
                            f"leading dot, at most 128 characters; pass another {option}")
    return value


def local_path(uri: str | os.PathLike) -> Path:
    """The filesystem path of a local URI (a plain path or ``file://``)."""
    text = str(uri)
    return Path(text[len("file://"):] if text.startswith("file://") else text)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; rename it into place only if the block succeeds.

    Works for files and for directories (Zarr stores), so a crash never leaves a half-written output.
    """
    target = local_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes(data: bytes, target: str | os.PathLike) -> str:
    """Write a file whole: renamed into place locally, one PUT (atomic on object stores) remotely."""
    if is_remote(target):
        fs, path = filesystem(target)
        fs.pipe_file(path, data)
        return str(target)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return str(target)


def read_bytes(uri: str | os.PathLike) -> bytes:
    if is_remote(uri):
        fs, path = filesystem(uri)
        return fs.cat_file(path)
    return local_path(uri).read_bytes()


def exists(uri: str | os.PathLike) -> bool:
    if is_remote(uri):
        fs, path = filesystem(uri)
        return fs.exists(path)
    return local_path(uri).exists()


def create_exclusive(uri: str | os.PathLike, data: bytes = b"") -> bool:
    """Create a file with ``data`` only if it does not exist yet, whole or not at all, so no reader sees it
    empty (a conditional write on object stores such as S3; a hard link of a finished temporary file locally);
    False when it already existed."""
    if is_remote(uri):
        fs, path = filesystem(uri)
        try:
            with fs.open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
        return True
    path = local_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def glob(pattern: str) -> list[str]:
    """URIs matching a glob pattern, sorted, in the same form as the pattern (local path or URL)."""
    if not is_remote(pattern):
        return sorted(_glob.glob(str(local_path(pattern))))
    fs, path = filesystem(pattern)
    return sorted(fs.unstrip_protocol(p) for p in fs.glob(path))


def write_json(obj: Any, target: str | os.PathLike) -> str:
    text = json.dumps(json_safe(obj), indent=2, default=_json_default, allow_nan=False)
    return write_bytes(text.encode(), target)


def read_json(uri: str | os.PathLike) -> Any:
    return json.loads(read_bytes(uri))


def fetch(uri: str | os.PathLike, folder: str | os.PathLike | None = None) -> str:
    """A local path for an input: local paths come back unchanged; a remote file, folder or glob is
    downloaded (again each time) into ``folder``, by default a folder per URL under ``staging_root()/inputs``,
    and the local equivalent returned: the file, the folder, or the same glob."""
    text = str(uri)
    if not is_remote(text):
        return text
    fs, path = filesystem(text)
    folder = Path(folder) if folder else staging_root() / "inputs" / hashlib.sha1(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    if any(ch in path for ch in "*?["):
        matches = fs.glob(path)
        if not matches:
            raise StorageError(f"{text}: no file matches this pattern; check the URL")
        for match in matches:
            fs.get_file(match, str(folder / Path(match).name))
        return str(folder / Path(path).name)
    if not fs.exists(path):
        raise StorageError(f"{text}: not found; check the URL and the credentials for it")
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(folder / Path(path).name) + "/", recursive=True)
        return str(folder / Path(path).name)
    target = folder / Path(path).name
    fs.get_file(path, str(target))
    return str(target)


def write_parquet(df: pd.DataFrame, target: str | os.PathLike) -> str:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return str(target)


def read_parquet(uri: str | os.PathLike, *, columns: list[str] | None = None,
                 batch_rows: int | None = None) -> pd.DataFrame:
    """A Parquet table as a DataFrame, the same as ``pd.read_parquet``; ``columns``: only those.

    With ``batch_rows`` the file is read that many rows at a time into arrays allocated once at their final size:
    numbers and naive datetimes without nulls as NumPy arrays, strings without nulls as Arrow arrays over NumPy
    buffers (a first pass sums their lengths); any other column keeps Arrow's chunks. The peak memory then stays
    near the frame's own size, where ``pd.read_parquet`` holds Arrow's table and pandas' copy at once (~3x).
    A table with a stored index or non-string column names is read by ``pd.read_parquet`` either way.
    """
    if batch_rows is None or is_remote(uri):
        return pd.read_parquet(uri if is_remote(uri) else local_path(uri), columns=columns)
    return _read_parquet_in_batches(local_path(uri), columns, batch_rows)


def _read_parquet_in_batches(path: Path, columns: list[str] | None, batch_rows: int) -> pd.DataFrame:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    pool = pa.default_memory_pool()
    schema, meta, pandas_meta = file.schema_arrow, file.metadata, file.schema_arrow.pandas_metadata or {}
    if pandas_meta.get("index_columns") or any(c["name"] != c["field_name"] for c in pandas_meta.get("columns", [])):
        return pd.read_parquet(path, columns=columns)
    names = list(schema.names if columns is None else columns)
    numpy_type = {c["field_name"]: c["numpy_type"] for c in pandas_meta.get("columns", [])}
    leaf = {file.schema.column(j).path: j for j in range(len(file.schema))}

    def kind(name: str) -> str:
        t = schema.field(name).type
        stats = [meta.row_group(g).column(leaf[name]).statistics for g in range(meta.num_row_groups)] \
            if name in leaf else [None]
        if not all(s is not None and s.has_null_count and s.null_count == 0 for s in stats):
            return "arrow"
        if pa.types.is_integer(t) or pa.types.is_float32(t) or pa.types.is_float64(t) or \
                (pa.types.is_timestamp(t) and t.tz is None):
            dtype = str(np.dtype(t.to_pandas_dtype()))
            return "numpy" if numpy_type.get(name, dtype) == dtype else "arrow"
        if (pa.types.is_string(t) or pa.types.is_large_string(t)) and numpy_type.get(name, "str") in ("str", "object"):
            return "string"
        return "arrow"

    kinds = {name: kind(name) for name in names}
    strings = [c for c in names if kinds[c] == "string"]
    offsets = {c: np.zeros(meta.num_rows + 1, dtype=np.int64) for c in strings}
    row = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=strings, use_threads=False) if strings else ():
        for c, column in zip(strings, batch.columns, strict=True):
            ends = offsets[c][row + 1:row + 1 + len(column)]
            np.cumsum(pc.binary_length(column).to_numpy(), dtype=np.int64, out=ends)
            ends += offsets[c][row]
        row += batch.num_rows
        pool.release_unused()
    arrays = {c: np.empty(meta.num_rows, dtype=schema.field(c).type.to_pandas_dtype())
              for c in names if kinds[c] == "numpy"}
    data = {c: np.empty(int(offsets[c][-1]), dtype=np.uint8) for c in strings}
    chunks: dict[str, list] = {c: [] for c in names if kinds[c] == "arrow"}
    row = 0
    for batch in file.iter_batches(batch_size=batch_rows, columns=names, use_threads=False):
        for c, column in zip(names, batch.columns, strict=True):
            if c in arrays:
                arrays[c][row:row + len(column)] = column.to_numpy()
            elif c in data and len(column):
                width = np.int64 if pa.types.is_large_string(column.type) else np.int32
                lo, hi = np.frombuffer(column.buffers()[1], dtype=width)[[column.offset, column.offset + len(column)]]
                if hi > lo:
                    data[c][offsets[c][row]:offsets[c][row + len(column)]] = \
                        np.frombuffer(column.buffers()[2], dtype=np.uint8)[lo:hi]
            elif c in chunks:
                chunks[c].append(column)
        row += batch.num_rows
        pool.release_unused()
    frame = {c: pa.chunked_array([pa.LargeStringArray.from_buffers(
        meta.num_rows, pa.py_buffer(offsets[c]), pa.py_buffer(data[c]))]).to_pandas() for c in strings}
    if chunks:
        fields = [schema.field(c) for c in chunks]
        table = pa.Table.from_arrays([pa.chunked_array(chunks.pop(f.name), f.type) for f in fields],
                                     schema=pa.schema(fields, metadata=schema.metadata))
        others = table.to_pandas(self_destruct=True, split_blocks=True)
        del table
        frame.update({c: others[c] for c in others.columns})
    pool.release_unused()
    return pd.DataFrame({c: arrays[c] if c in arrays else frame[c] for c in names},
                        index=pd.RangeIndex(meta.num_rows), copy=False)


def write_zarr(ds, target: str | os.PathLike) -> str:
    """Write an xarray Dataset (lazy or not) to Zarr atomically; Dask computes it chunk by chunk."""
    with atomic_path(target) as tmp:
        ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=2)
    return str(target)


def open_zarr(uri: str | os.PathLike):
    import xarray as xr

    return xr.open_zarr(uri if is_remote(uri) else local_path(uri), consolidated=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_safe(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None, recursively."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def staging_root() -> Path:
    """Where runs whose data root is remote are produced before ``RunRecord.sync`` uploads them:
    ``TESSERA_STAGING``, else the system's temporary folder."""
    return Path(os.environ.get("TESSERA_STAGING") or Path(tempfile.gettempdir()) / "tessera-staging")

"""Cloud-Optimized GeoTIFFs from (y, x) DataArrays on one grid, written block by block."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Any

from tasks.store import atomic_path


def write_cog(array, target: str | os.PathLike, *, nodata: float | int | None = None, batch: int = 8) -> str:
    """Write a georeferenced (y, x) DataArray as a Cloud-Optimized GeoTIFF aligned with its grid."""
    return write_cogs({str(target): (array, nodata)}, batch=batch)[0]


def write_cogs(layers: dict[str, tuple[Any, float | int | None]], *, batch: int = 8) -> list[str]:
    """Write (y, x) DataArrays on one grid and chunking, ``{target: (array, nodata)}``, as Cloud-Optimized
    GeoTIFFs; return the targets.

    Dask computes the blocks ``batch`` at a time, every layer's block in one call, so layers derived from one
    computation (a class map and its confidence) share it; this process alone writes the blocks into tiled
    GeoTIFFs, so several worker processes never write one file, and GDAL's COG driver then adds the overviews.
    Memory holds one batch of blocks, not the maps.
    """
    import dask
    import rasterio
    import rasterio.shutil
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    from rasterio.windows import Window

    arrays = [array for array, _ in layers.values()]
    data = [array.data for array in arrays]
    chunks = getattr(data[0], "chunks", None)
    if any(getattr(d, "chunks", None) != chunks or d.shape != data[0].shape for d in data):
        raise ValueError("write_cogs: every layer needs the same shape and chunks")
    blocks = _block_slices(chunks) if chunks else [(slice(0, data[0].shape[0]), slice(0, data[0].shape[1]))]
    with ExitStack() as stack:
        staged, outputs = [], []
        for (target, (array, nodata)), values in zip(layers.items(), data, strict=True):
            tmp = stack.enter_context(atomic_path(target))
            staging = tmp.with_suffix(".staging.tif")
            stack.callback(staging.unlink, missing_ok=True)
            profile = {"driver": "GTiff", "width": values.shape[1], "height": values.shape[0], "count": 1,
                       "dtype": str(values.dtype), "crs": array.rio.crs, "transform": array.rio.transform(),
                       "nodata": nodata if nodata is not None else array.rio.nodata, "tiled": True,
                       "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
            staged.append(stack.enter_context(rasterio.open(staging, "w", **profile)))
            outputs.append((staging, tmp, target))
        for start in range(0, len(blocks), batch):
            part = blocks[start:start + batch]
            computed = dask.compute(*[d[r, c] for r, c in part for d in data])
            for i, (rows, cols) in enumerate(part):
                window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
                for j, dst in enumerate(staged):
                    dst.write(computed[i * len(data) + j], 1, window=window)
        for dst in staged:
            dst.close()
        for staging, tmp, _ in outputs:
            rasterio.shutil.copy(staging, tmp, driver="COG", compress="deflate", overview_resampling="nearest")
    return [target for _, _, target in outputs]


def _block_slices(chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> list[tuple[slice, slice]]:
    import numpy as np

    row_edges = np.cumsum((0,) + chunks[0])
    col_edges = np.cumsum((0,) + chunks[1])
    return [(slice(int(r0), int(r1)), slice(int(c0), int(c1)))
            for r0, r1 in zip(row_edges[:-1], row_edges[1:], strict=True)
            for c0, c1 in zip(col_edges[:-1], col_edges[1:], strict=True)]

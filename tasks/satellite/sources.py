"""Readers at the edge: find scene files, check them, profile them, and open bands lazily.

A scene is one acquisition of one tile: either a multi-band file, or one file per band recognised by its
band suffix (``_B04``, ``_B8A``, ``_b3``) and grouped by the rest of the name; an optional mask layer
(``_SCL``, ``_fmask``) marks clouds.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from tasks.errors import BadInputError

if TYPE_CHECKING:
    from odc.geo.geobox import GeoBox

RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".vrt"}
_BAND = re.compile(r"^(?P<stem>.+?)[_-](?P<band>B\d{1,2}A?(?:_VCID_\d)?|SCL|FMASK|BQA|QA_PIXEL)(?:_\d+m)?$",
                   re.IGNORECASE)
# Mask layers: values that are not a clear view of the ground.
INVALID_MASK_VALUES = {
    "SCL": (0, 1, 3, 8, 9, 10),  # nodata, saturated, cloud shadow, cloud medium/high, cirrus
    "FMASK": (2, 4, 255),  # shadow, cloud, fill
}
IGNORED_LAYERS = {"BQA", "QA_PIXEL"}


@dataclass
class Scene:
    """The files of one acquisition: band name to (path, band index in that file), plus a mask layer."""

    scene: str
    bands: dict[str, tuple[str, int]] = field(default_factory=dict)
    mask: str | None = None
    mask_kind: str | None = None

    def rows(self) -> list[dict]:
        rows = [{"scene": self.scene, "band": b, "path": p, "index": i, "role": "band"}
                for b, (p, i) in self.bands.items()]
        if self.mask:
            rows.append({"scene": self.scene, "band": self.mask_kind, "path": self.mask, "index": 1, "role": "mask"})
        return rows


def scenes_from_table(table: pd.DataFrame) -> list[Scene]:
    scenes: dict[str, Scene] = {}
    for row in table.itertuples():
        scene = scenes.setdefault(row.scene, Scene(row.scene))
        if row.role == "mask":
            scene.mask, scene.mask_kind = row.path, row.band
        else:
            scene.bands[row.band] = (row.path, int(row.index))
    return list(scenes.values())


def _open(path: str):
    try:
        return rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise BadInputError(f"{path}: cannot be read as a raster ({str(exc).splitlines()[0]}); "
                            "re-download the file or remove it from the input") from exc


def _band_names(path: str) -> list[str]:
    with _open(path) as src:
        names = [d.upper() if d else f"B{i}" for i, d in enumerate(src.descriptions, start=1)]
    return names


def find_scenes(input_path: str, *, exclude: tuple[str, ...] = ()) -> list[Scene]:
    """Group raster files under a folder or glob into scenes."""
    base = Path(input_path).expanduser()
    if base.is_dir():
        files = sorted(p for p in base.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES)
    elif any(ch in input_path for ch in "*?["):
        matches = glob.glob(input_path, recursive=True)
        files = sorted(Path(p) for p in matches if Path(p).suffix.lower() in RASTER_SUFFIXES)
    elif base.is_file():
        files = [base]
    else:
        raise BadInputError(f"{input_path}: no such folder or file; pass --input a folder or glob of GeoTIFF/JP2 files")
    excluded = {Path(e).resolve() for e in exclude if e}
    files = [f for f in files if f.resolve() not in excluded]
    if not files:
        raise BadInputError(f"{input_path}: no GeoTIFF or JP2 files found; expected *.tif, *.tiff or *.jp2")
    scenes: dict[str, Scene] = {}
    for f in files:
        match = _BAND.match(f.stem)
        if not match:
            scene = scenes.setdefault(f.stem, Scene(f.stem))
            for i, name in enumerate(_band_names(str(f)), start=1):
                scene.bands[name] = (str(f), i)
            continue
        stem, band = match["stem"], match["band"].upper()
        scene = scenes.setdefault(stem, Scene(stem))
        if band in INVALID_MASK_VALUES:
            scene.mask, scene.mask_kind = str(f), band
        elif band not in IGNORED_LAYERS:
            scene.bands[band] = (str(f), 1)
    empty = [s.scene for s in scenes.values() if not s.bands]
    if empty:
        raise BadInputError(f"scene {empty[0]} has a mask layer but no band files; add its band files or remove it")
    return list(scenes.values())


def reflectance_scale(dtype: str, scale: float | None = None) -> float:
    """Digital numbers to reflectance: ``scale`` if given, else L2A-style integers are reflectance x 10000
    and 8-bit data x 255."""
    if scale is not None:
        return scale
    if dtype == "uint8":
        return 1 / 255
    if dtype.startswith(("uint", "int")):
        return 1 / 10_000
    return 1.0


def _decimated(src, index: int, max_side: int = 256) -> np.ndarray:
    factor = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
    shape = (max(1, src.height // factor), max(1, src.width // factor))
    return src.read(index, out_shape=shape, resampling=Resampling.nearest)


def _check_readable(src, index: int, path: str) -> None:
    """Read the first and last rows: a truncated file fails here rather than half-way through a mosaic."""
    try:
        src.read(index, window=Window(0, 0, src.width, 1))
        src.read(index, window=Window(0, src.height - 1, src.width, 1))
    except (RasterioError, OSError) as exc:
        raise BadInputError(f"{path}: raster data is corrupt or truncated ({str(exc).splitlines()[0]}); "
                            "re-download the file or remove it from the input") from exc


def profile_scenes(scenes: list[Scene], *, scale: float | None = None) -> pd.DataFrame:
    """One row per scene and band: CRS, resolution, dtype, nodata and cloud fractions, value range.

    Values come from a decimated read (at most 256 px a side), cheap for any file size; bands of one
    scene must cover the same extent.
    """
    rows = []
    for scene in scenes:
        cloud = np.nan
        clear = None
        if scene.mask:
            with _open(scene.mask) as src:
                _check_readable(src, 1, scene.mask)
                mask = _decimated(src, 1)
            invalid = np.isin(mask, INVALID_MASK_VALUES[scene.mask_kind])
            nodata_mask = np.isin(mask, (0,) if scene.mask_kind == "SCL" else (255,))
            cloud = float((invalid & ~nodata_mask).sum() / max(1, (~nodata_mask).sum()))
            clear = float((~invalid).mean())
        reference = None
        for band, (path, index) in scene.bands.items():
            with _open(path) as src:
                if src.crs is None:
                    raise BadInputError(f"{path}: has no CRS; assign one, e.g. gdal_edit.py -a_srs EPSG:32632 {path}")
                _check_readable(src, index, path)
                data = _decimated(src, index)
                bounds, res, crs, dtype, nodata = src.bounds, src.res, src.crs, src.dtypes[index - 1], src.nodata
                width, height = src.width, src.height
            if reference is None:
                reference = (band, path, bounds, res, crs)
            elif crs != reference[4] or max(abs(a - b) for a, b in zip(bounds, reference[2], strict=True)) > max(
                    max(res), max(reference[3])):
                raise BadInputError(
                    f"{path}: band {band} of scene {scene.scene} covers {tuple(round(v) for v in bounds)} but band "
                    f"{reference[0]} ({reference[1]}) covers {tuple(round(v) for v in reference[2])}; bands of one "
                    "scene must cover the same extent: export them from the same product")
            valid = data != nodata if nodata is not None else np.isfinite(data)
            values = data[valid].astype("float64") * reflectance_scale(dtype, scale)
            rows.append({
                "scene": scene.scene, "band": band, "path": path, "crs": crs.to_string(),
                "resolution": float(max(res)), "dtype": dtype, "width": width, "height": height,
                "nodata_fraction": float(1 - valid.mean()),
                "cloud_fraction": cloud,
                "clear_fraction": clear if clear is not None else float(valid.mean()),
                "min": float(values.min()) if values.size else np.nan,
                "max": float(values.max()) if values.size else np.nan,
            })
    return pd.DataFrame(rows)


def open_band(path: str, index: int = 1, *, chunks: int = 1024, scale: float | None = None, raw: bool = False):
    """A band as a lazy float32 reflectance DataArray with NaN for nodata (rioxarray, Dask-chunked).

    ``scale`` overrides the reflectance scale of the data type; ``raw`` keeps stored values (label rasters)."""
    import rioxarray

    da = rioxarray.open_rasterio(path, chunks={"band": 1, "y": chunks, "x": chunks}, lock=False,
                                 cache=False).sel(band=index, drop=True)
    nodata = da.rio.nodata
    factor = 1.0 if raw else reflectance_scale(str(da.dtype), scale)
    out = da.astype("float32") * np.float32(factor)
    if nodata is not None:
        out = out.where(da != nodata)
    return out.rio.write_crs(da.rio.crs).rio.write_nodata(np.nan)


def band_geobox(path: str) -> GeoBox:
    """The grid of a raster file (odc-geo ``GeoBox``) from its metadata alone: equal to ``open_band(path)
    .odc.geobox`` without building a lazy array (GDAL handle, coordinates, Dask graph) for every band."""
    from odc.geo.geobox import GeoBox

    with _open(path) as src:
        return GeoBox(src.shape, src.transform, src.crs)


def open_mask(path: str, kind: str, *, chunks: int = 1024):
    """A mask layer as a lazy float32 DataArray: 1 where the view is clear, 0 where not."""
    import rioxarray

    da = rioxarray.open_rasterio(path, chunks={"band": 1, "y": chunks, "x": chunks}, lock=False,
                                 cache=False).sel(band=1, drop=True)
    clear = (~da.isin(list(INVALID_MASK_VALUES[kind]))).astype("float32")
    return clear.rio.write_crs(da.rio.crs).rio.write_nodata(np.nan)


def read_label_polygons(path: str, column: str):
    """Label polygons (GeoPackage, GeoJSON, Shapefile) with their class column."""
    import geopandas as gpd

    if not Path(path).exists():
        raise BadInputError(f"{path}: labels file not found; pass --labels a GeoPackage, GeoJSON or Shapefile")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # pyogrio raises several types for unreadable files
        raise BadInputError(f"{path}: cannot be read as vector labels ({exc}); "
                            "use GeoPackage, GeoJSON or Shapefile") from exc
    if column not in gdf.columns:
        found = ", ".join(c for c in gdf.columns if c != "geometry")
        raise BadInputError(f"{path}: label column {column!r} not found; columns are: {found}; pass --label-column")
    if gdf.crs is None:
        raise BadInputError(f"{path}: labels have no CRS; save them with a CRS (e.g. EPSG:4326)")
    return gdf[[column, "geometry"]].reset_index(drop=True)


def _window_over(src, bounds, crs) -> Window | None:
    """The window of ``src`` under ``bounds`` (in ``crs``), one pixel wider on each side; None if outside."""
    import math

    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    left, bottom, right, top = transform_bounds(crs, src.crs, *bounds, densify_pts=21)
    win = from_bounds(left, bottom, right, top, src.transform)
    c0, r0 = max(0, math.floor(win.col_off) - 1), max(0, math.floor(win.row_off) - 1)
    c1 = min(src.width, math.ceil(win.col_off + win.width) + 1)
    r1 = min(src.height, math.ceil(win.row_off + win.height) + 1)
    return Window(c0, r0, c1 - c0, r1 - r0) if c1 > c0 and r1 > r0 else None


def _warp_window(path: str, index: int, chunk_box, *, resampling: str,
                 out: np.ndarray | None = None) -> np.ndarray | None:
    """One band of one file warped onto a chunk of the grid as float32, NaN where the file has nodata or no
    pixel; into ``out`` if given (a float32 array of the chunk's shape). None if the file misses the chunk."""
    from rasterio.warp import reproject

    with _open(path) as src:
        window = _window_over(src, chunk_box.boundingbox, chunk_box.crs)
        if window is None:
            return None
        data = src.read(index, window=window)
        nodata, transform, crs = src.nodata, src.window_transform(window), src.crs
    if out is None:
        out = np.full(chunk_box.shape.yx, np.nan, dtype="float32")
    reproject(data, out, src_transform=transform, src_crs=crs, src_nodata=nodata, dst_transform=chunk_box.transform,
              dst_crs=chunk_box.crs, dst_nodata=np.nan, resampling=Resampling[resampling])
    return out


def _fill_band(target: np.ndarray, path: str, index: int, chunk, *, resampling: str, scale: np.float32,
               clear: np.ndarray | None) -> None:
    """Fill the NaN pixels of ``target`` (one band of a chunk) from one file. A band still empty is warped
    straight into ``target``, saving a chunk-sized buffer and a copy."""
    empty = np.isnan(target)
    if not empty.any():
        return
    values = _warp_window(path, index, chunk, resampling=resampling, out=target if empty.all() else None)
    if values is None:
        return
    values *= scale
    if clear is not None:
        values[~clear] = np.nan
    if values is not target:
        np.copyto(target, values, where=empty)


def _mosaic_block(block, *, scenes, bands, geobox, resampling, scales, block_info=None):
    (_, _), (y0, y1), (x0, x1) = block_info[0]["array-location"]
    chunk = geobox[y0:y1, x0:x1]
    box = chunk.boundingbox
    out = np.full((len(bands), y1 - y0, x1 - x0), np.nan, dtype="float32")
    for footprint, scene in scenes:
        if not (footprint[0] < box.right and box.left < footprint[2] and footprint[1] < box.top
                and box.bottom < footprint[3]):
            continue
        clear = None
        if scene.mask:
            kind = _warp_window(scene.mask, 1, chunk, resampling="nearest")
            if kind is None:
                continue
            clear = np.isfinite(kind) & ~np.isin(kind, INVALID_MASK_VALUES[scene.mask_kind])
            del kind
        for i, band in enumerate(bands):
            path, index = scene.bands[band]
            _fill_band(out[i], path, index, chunk, resampling=resampling, scale=scales[(path, index)], clear=clear)
    return out


def read_mosaic(scenes: list[Scene], bands: list[str], geobox, *, resampling: str = "average",
                scale: float | None = None, chunks: int = 1024):
    """First-valid mosaic of ``scenes`` (first = highest priority) onto ``geobox``, read straight from the
    files chunk by chunk: one Dask task per output chunk reads only the windows under it, warps them with
    GDAL, masks clouds and fills what is still empty. Memory depends on the chunk size, not the input size.

    Gives the same values as ``grid.mosaic(method="first")`` over ``grid.scene_on_grid`` stacks.
    """
    import dask.array as da
    import xarray as xr
    from odc.geo.xr import xr_coords
    from rasterio.warp import transform_bounds

    placed, scales = [], {}
    for scene in scenes:
        with _open(next(iter(scene.bands.values()))[0]) as src:
            footprint = transform_bounds(src.crs, geobox.crs, *src.bounds, densify_pts=21)
        placed.append((footprint, scene))
        for band in bands:
            path, index = scene.bands[band]
            with _open(path) as src:
                scales[(path, index)] = np.float32(reflectance_scale(src.dtypes[index - 1], scale))
    ny, nx = geobox.shape.yx
    template = da.empty((len(bands), ny, nx), chunks=(len(bands), chunks, chunks), dtype="float32")
    data = template.map_blocks(_mosaic_block, scenes=placed, bands=bands, geobox=geobox, resampling=resampling,
                               scales=scales, dtype="float32")
    return xr.DataArray(data, dims=("band", "y", "x"), coords={"band": bands, **xr_coords(geobox)})

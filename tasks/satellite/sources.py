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
_NUMBERED = re.compile(r"^(?P<stem>.+?)[_-](?P<band>\d{1,2})$")


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
        if base.suffix.lower() not in RASTER_SUFFIXES:
            raise BadInputError(f"{input_path}: a {base.suffix or 'suffix-less'} file, not a GeoTIFF/JP2 raster; the "
                                "satellite pipeline reads scenes: pass --input a raster, or a folder or glob of them")
        files = [base]
    else:
        raise BadInputError(f"{input_path}: no such folder or file; pass --input a folder or glob of GeoTIFF/JP2 files")
    excluded = {Path(e).resolve() for e in exclude if e}
    files = [f for f in files if f.resolve() not in excluded]
    if not files:
        raise BadInputError(f"{input_path}: no GeoTIFF or JP2 files found; expected *.tif, *.tiff or *.jp2")
    scenes: dict[str, Scene] = {}
    numbered = _numbered_bands([f for f in files if not _BAND.match(f.stem)])
    for f in files:
        match = _BAND.match(f.stem)
        if f in numbered:
            stem, band = numbered[f]
            scenes.setdefault(stem, Scene(stem)).bands[band] = (str(f), 1)
            continue
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


def _numbered_bands(files: list[Path]) -> dict[Path, tuple[str, str]]:
    """Single-band files named ``<stem>_<n>`` (``lsat7_2000_10.tif``) that share a stem and one grid are the bands
    of one scene, ``B<n>``; numbered files on different grids are tiles, scenes of their own."""
    groups: dict[str, list[tuple[Path, str]]] = {}
    for f in files:
        match = _NUMBERED.match(f.stem)
        if match:
            groups.setdefault(match["stem"], []).append((f, match["band"]))
    out = {}
    for stem, members in groups.items():
        grids = set()
        for f, _ in members:
            with _open(str(f)) as src:
                grids.add((src.count, src.shape, tuple(src.transform), src.crs.to_string() if src.crs else None))
        if len(members) > 1 and len(grids) == 1 and next(iter(grids))[0] == 1:
            out.update({f: (stem, f"B{band}") for f, band in members})
    return out


@dataclass(frozen=True)
class Encoding:
    """How a band's stored numbers become reflectance, and which stored values are no measurement: the
    product's saturation value and, in integer products, 0 (fill). Both are masked like nodata."""

    scale: float
    saturated: float | None = None
    zero_is_fill: bool = False

    @property
    def masked(self) -> tuple[float, ...]:
        return ((0.0,) if self.zero_is_fill else ()) + ((self.saturated,) if self.saturated is not None else ())


def band_encoding(dtype: str, *, scale: float | None = None, eight_bit: bool = False) -> Encoding:
    """The encoding of a band: 8-bit digital numbers (``uint8``, or any type holding whole numbers 0-255, which
    ``eight_bit`` says) are reflectance x 255 and saturate at 255; other integers are reflectance x 10000
    (Sentinel-2, Landsat surface reflectance) and saturate at their type's maximum; floats are reflectance.
    ``scale`` overrides the factor."""
    if dtype == "uint8" or eight_bit:
        return Encoding(scale or 1 / 255, 255.0, True)
    if dtype.startswith(("uint", "int")):
        return Encoding(scale or 1 / 10_000, float(np.iinfo(dtype).max), True)
    return Encoding(scale or 1.0)


def holds_eight_bit(samples: list[np.ndarray]) -> bool:
    """True when every band of a scene holds only whole numbers 0-255: 8-bit data stored in a wider type."""
    values = [v for v in samples if v.size]
    return bool(values) and all(v.min() >= 0 and v.max() <= 255 and np.array_equal(v, np.round(v)) for v in values)


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


def _scene_mask(scene: Scene) -> tuple[float, float | None]:
    """(cloud fraction of the clear-or-cloudy pixels, clear fraction) from the scene's mask layer."""
    with _open(scene.mask) as src:
        _check_readable(src, 1, scene.mask)
        mask = _decimated(src, 1)
    invalid = np.isin(mask, INVALID_MASK_VALUES[scene.mask_kind])
    nodata_mask = np.isin(mask, (0,) if scene.mask_kind == "SCL" else (255,))
    return float((invalid & ~nodata_mask).sum() / max(1, (~nodata_mask).sum())), float((~invalid).mean())


def _read_sample(scene: Scene, band: str, reference: tuple | None) -> tuple[np.ndarray, dict]:
    """A decimated read of one band (at most 256 px a side) and its file metadata; checks CRS and extent."""
    path, index = scene.bands[band]
    with _open(path) as src:
        if src.crs is None:
            raise BadInputError(f"{path}: has no CRS; assign one, e.g. gdal_edit.py -a_srs EPSG:32632 {path}")
        _check_readable(src, index, path)
        data = _decimated(src, index)
        meta = {"bounds": src.bounds, "res": src.res, "crs": src.crs, "dtype": src.dtypes[index - 1],
                "nodata": src.nodata, "width": src.width, "height": src.height}
    if reference is not None and (meta["crs"] != reference[4] or max(
            abs(a - b) for a, b in zip(meta["bounds"], reference[2], strict=True)) > max(max(meta["res"]),
                                                                                         max(reference[3]))):
        raise BadInputError(
            f"{path}: band {band} of scene {scene.scene} covers {tuple(round(v) for v in meta['bounds'])} but band "
            f"{reference[0]} ({reference[1]}) covers {tuple(round(v) for v in reference[2])}; bands of one "
            "scene must cover the same extent: export them from the same product")
    return data, meta


def profile_scenes(scenes: list[Scene], *, scale: float | None = None) -> pd.DataFrame:
    """One row per scene and band: CRS, resolution (also in metres), dtype, how it encodes reflectance (scale,
    saturation value), the shares of nodata, saturated and cloudy pixels, and reflectance percentiles p1/p99
    of the measured pixels, so that a few bright roofs or a line of bad pixels cannot decide a gate.

    Values come from a decimated read (every pixel up to 256 px a side, a regular sample of larger files), cheap
    for any file size; pixel counts are that sample's shares times the band's size. Bands of one scene must
    cover the same extent.
    """
    rows = []
    for scene in scenes:
        cloud, clear = _scene_mask(scene) if scene.mask else (np.nan, None)
        reference, reads = None, []
        for band, (path, _) in scene.bands.items():
            data, meta = _read_sample(scene, band, reference)
            reference = reference or (band, path, meta["bounds"], meta["res"], meta["crs"])
            nodata = ~np.isfinite(data) if meta["nodata"] is None else (data == meta["nodata"]) | ~np.isfinite(data)
            reads.append((band, path, data, meta, nodata))
        eight_bit = holds_eight_bit([d[~n] for _, _, d, _, n in reads])
        for band, path, data, meta, nodata in reads:
            encoding = band_encoding(meta["dtype"], scale=scale, eight_bit=eight_bit)
            fill = nodata | (encoding.zero_is_fill & (data == 0))
            saturated = ~fill & (data == encoding.saturated) if encoding.saturated is not None else np.zeros_like(fill)
            values = data[~fill & ~saturated].astype("float64") * encoding.scale
            size = meta["width"] * meta["height"]
            rows.append({
                "scene": scene.scene, "band": band, "path": path, "index": scene.bands[band][1],
                "crs": meta["crs"].to_string(),
                "resolution": float(max(meta["res"])), "resolution_m": _metres(max(meta["res"]), meta["crs"]),
                "dtype": meta["dtype"], "width": meta["width"], "height": meta["height"],
                "scale": encoding.scale, "saturation": np.nan if encoding.saturated is None else encoding.saturated,
                "zero_is_fill": encoding.zero_is_fill,
                "nodata_fraction": float(fill.mean()), "saturated_fraction": float(saturated.mean()),
                "valid_fraction": float(values.size / max(data.size, 1)),
                "nodata_pixels": round(float(fill.mean()) * size), "saturated_pixels": round(
                    float(saturated.mean()) * size),
                "cloud_fraction": cloud if band == next(iter(scene.bands)) else np.nan,  # one value per scene
                "clear_fraction": clear if clear is not None else float(values.size / max(data.size, 1)),
                "p1": float(np.percentile(values, 1)) if values.size else np.nan,
                "p99": float(np.percentile(values, 99)) if values.size else np.nan,
            })
    return pd.DataFrame(rows)


def _metres(resolution: float, crs) -> float:
    """A pixel's size in metres: degrees of a geographic CRS at about 111 km each."""
    if crs.is_geographic:
        return float(resolution * 111_320)
    try:
        return float(resolution * crs.linear_units_factor[1])
    except Exception:  # a CRS without linear units (rasterio raises CRSError): take its numbers as metres
        return float(resolution)


def open_band(path: str, index: int = 1, *, chunks: int = 1024, scale: float | None = None, raw: bool = False,
              encoding: Encoding | None = None):
    """A band as a lazy float32 reflectance DataArray with NaN for nodata, fill and saturated pixels (rioxarray,
    Dask-chunked).

    ``encoding`` (default: from the data type, ``scale`` overriding its factor) says how stored values become
    reflectance; ``raw`` keeps stored values and masks nodata only (label rasters)."""
    import rioxarray

    da = rioxarray.open_rasterio(path, chunks={"band": 1, "y": chunks, "x": chunks}, lock=False,
                                 cache=False).sel(band=index, drop=True)
    nodata = da.rio.nodata
    encoding = Encoding(1.0) if raw else encoding or band_encoding(str(da.dtype), scale=scale)
    out = da.astype("float32") * np.float32(encoding.scale)
    if nodata is not None:
        out = out.where(da != nodata)
    if encoding.masked:
        out = out.where(~da.isin(list(encoding.masked)))
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


def _warp_window(path: str, index: int, chunk_box, *, resampling: str, out: np.ndarray | None = None,
                 masked: tuple[float, ...] = ()) -> np.ndarray | None:
    """One band of one file warped onto a chunk of the grid as float32, NaN where the file has nodata, one of the
    ``masked`` values (fill, saturation) or no pixel, so they never blend into their neighbours; into ``out`` if
    given (a float32 array of the chunk's shape). None if the file misses the chunk."""
    from rasterio.warp import reproject

    with _open(path) as src:
        window = _window_over(src, chunk_box.boundingbox, chunk_box.crs)
        if window is None:
            return None
        data = src.read(index, window=window)
        nodata, transform, crs = src.nodata, src.window_transform(window), src.crs
    bad = np.isin(data, masked) if masked else None
    if bad is not None and bad.any():
        data = data.astype("float32")
        if nodata is not None:
            data[data == np.float32(nodata)] = np.nan
        data[bad], nodata = np.nan, np.nan
    if out is None:
        out = np.full(chunk_box.shape.yx, np.nan, dtype="float32")
    reproject(data, out, src_transform=transform, src_crs=crs, src_nodata=nodata, dst_transform=chunk_box.transform,
              dst_crs=chunk_box.crs, dst_nodata=np.nan, resampling=Resampling[resampling])
    return out


def _fill_band(target: np.ndarray, path: str, index: int, chunk, *, resampling: str, encoding: Encoding,
               clear: np.ndarray | None) -> None:
    """Fill the NaN pixels of ``target`` (one band of a chunk) from one file. A band still empty is warped
    straight into ``target``, saving a chunk-sized buffer and a copy."""
    empty = np.isnan(target)
    if not empty.any():
        return
    values = _warp_window(path, index, chunk, resampling=resampling, out=target if empty.all() else None,
                          masked=encoding.masked)
    if values is None:
        return
    values *= np.float32(encoding.scale)
    if clear is not None:
        values[~clear] = np.nan
    if values is not target:
        np.copyto(target, values, where=empty)


def _mosaic_block(block, *, scenes, bands, geobox, resampling, encodings, block_info=None):
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
            _fill_band(out[i], path, index, chunk, resampling=resampling, encoding=encodings[(path, index)],
                       clear=clear)
    return out


def read_mosaic(scenes: list[Scene], bands: list[str], geobox, *, resampling: str = "average",
                scale: float | None = None, chunks: int = 1024,
                encodings: dict[tuple[str, int], Encoding] | None = None):
    """First-valid mosaic of ``scenes`` (first = highest priority) onto ``geobox``, read straight from the
    files chunk by chunk: one Dask task per output chunk reads only the windows under it, masks fill and
    saturated values, warps them with GDAL, masks clouds and fills what is still empty. Memory depends on the
    chunk size, not the input size. ``encodings`` by (path, band index), as the scene profile found them
    (default: from each file's data type, ``scale`` overriding the factor).

    Gives the same values as ``grid.mosaic(method="first")`` over ``grid.scene_on_grid`` stacks.
    """
    import dask.array as da
    import xarray as xr
    from odc.geo.xr import xr_coords
    from rasterio.warp import transform_bounds

    placed, encodings = [], dict(encodings or {})
    for scene in scenes:
        with _open(next(iter(scene.bands.values()))[0]) as src:
            footprint = transform_bounds(src.crs, geobox.crs, *src.bounds, densify_pts=21)
        placed.append((footprint, scene))
        for band in bands:
            path, index = scene.bands[band]
            if (path, index) not in encodings:
                with _open(path) as src:
                    encodings[(path, index)] = band_encoding(src.dtypes[index - 1], scale=scale)
    ny, nx = geobox.shape.yx
    template = da.empty((len(bands), ny, nx), chunks=(len(bands), chunks, chunks), dtype="float32")
    data = template.map_blocks(_mosaic_block, scenes=placed, bands=bands, geobox=geobox, resampling=resampling,
                               encodings=encodings, dtype="float32")
    return xr.DataArray(data, dims=("band", "y", "x"), coords={"band": bands, **xr_coords(geobox)})

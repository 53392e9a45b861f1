"""Onto one grid: resample bands, mask clouds, mosaic scenes, and normalize with training-area statistics.

Everything here is lazy and chunked (xarray over Dask): nothing is computed until a writer stores it, so a
mosaic larger than memory streams through chunk by chunk.
"""

from __future__ import annotations

import hashlib
import warnings

import dask.array as da
import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_reproject
from rasterio.errors import NotGeoreferencedWarning

MOSAIC_METHODS = ("first", "median", "least-cloudy")
SPLITS = {"train": 0, "val": 1, "test": 2}
CLIP_PERCENTILES = (0.5, 99.5)
# odc-geo warps in-memory chunks through rasterio, which warns that a bare array has no geotransform.
warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


def target_geobox(geoboxes: list[GeoBox], *, crs: str | None = None, resolution: float | None = None) -> GeoBox:
    """The grid every band goes onto: the union of the footprints in one CRS (the first scene's unless
    ``crs``) at the finest band resolution (unless ``resolution``), aligned to multiples of it."""
    crs = crs or geoboxes[0].crs
    same = [gb for gb in geoboxes if gb.crs == crs]
    res = resolution or min(abs(gb.resolution.x) for gb in (same or geoboxes))
    bbox = None
    for gb in geoboxes:
        box = gb.boundingbox.to_crs(crs)
        bbox = box if bbox is None else bbox | box
    return GeoBox.from_bbox(bbox, crs=crs, resolution=res)


def resample_to_grid(band: xr.DataArray, geobox: GeoBox, *, resampling: str = "average",
                     chunks: int = 1024) -> xr.DataArray:
    """One band onto ``geobox`` (lazy for Dask input). ``average`` aggregates when coarsening and repeats
    the covering pixel when refining, so a 20 m pixel becomes four equal 10 m pixels."""
    kw = {"chunks": (chunks, chunks)} if band.chunks else {}
    return xr_reproject(band, geobox, resampling=resampling, dst_nodata=np.nan, **kw)


def scene_on_grid(bands: dict[str, xr.DataArray], geobox: GeoBox, *, clear: xr.DataArray | None = None,
                  resampling: str = "average", chunks: int = 1024) -> xr.DataArray:
    """A scene's bands stacked as (band, y, x) on ``geobox``; cloudy and nodata pixels are NaN."""
    layers = [resample_to_grid(bands[name], geobox, resampling=resampling, chunks=chunks) for name in bands]
    stack = xr.concat(layers, dim="band").assign_coords(band=list(bands))
    if clear is not None:
        mask = resample_to_grid(clear, geobox, resampling="nearest", chunks=chunks)
        stack = stack.where(mask == 1)
    return stack


def mosaic(stacks: list[xr.DataArray], *, method: str = "first",
           cloud_fractions: list[float] | None = None) -> xr.DataArray:
    """Combine scenes on one grid: ``first`` takes the first valid value in the given order, ``median``
    the per-pixel median of valid values, ``least-cloudy`` the first valid value, least cloudy scene first."""
    if method not in MOSAIC_METHODS:
        raise ValueError(f"unknown mosaic method {method!r}; choose one of {', '.join(MOSAIC_METHODS)}")
    if method == "median":
        return xr.concat(stacks, dim="scene").median("scene", skipna=True)
    if method == "least-cloudy":
        stacks = [stacks[i] for i in least_cloudy_order(cloud_fractions)]
    result = stacks[0]
    for stack in stacks[1:]:
        result = result.fillna(stack)
    return result


def least_cloudy_order(cloud_fractions: list[float]) -> np.ndarray:
    """Scene indices, least cloudy first (unknown cloud cover last), ties kept in the given order."""
    return np.argsort(np.nan_to_num(np.asarray(cloud_fractions, dtype=float), nan=1.0), kind="stable")


def labelled_blocks(labelled: np.ndarray, block: int) -> np.ndarray:
    """Per block of side ``block``, whether it holds a labelled pixel."""
    nby, nbx = -(-labelled.shape[0] // block), -(-labelled.shape[1] // block)
    padded = np.zeros((nby * block, nbx * block), dtype=bool)
    padded[: labelled.shape[0], : labelled.shape[1]] = labelled
    return padded.reshape(nby, block, nbx, block).any(axis=(1, 3))


def fit_block(labelled: np.ndarray, block: int, *, smallest: int = 32, needed: int = 3) -> int:
    """``block``, halved until at least ``needed`` blocks hold labels (one each for train, validation and test),
    but not below ``smallest``: sparse labels on a small area would otherwise leave a split without any."""
    while block // 2 >= smallest and labelled.any() and labelled_blocks(labelled, block).sum() < needed:
        block //= 2
    return block


def block_split(shape: tuple[int, int], *, block: int = 64, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                seed: int = 0, key: str = "", labelled: np.ndarray | None = None) -> da.Array:
    """Split a grid by space: square blocks are assigned to train (0), val (1) and test (2).

    Deterministic for a grid (``key``), seed and labels, so every run over an area uses the same split; at least
    one block goes to each split when there are three or more blocks. With ``labelled`` (True where a pixel has
    a label) only the blocks holding labels are shared out by ``fractions``; the others go to train, where they
    count for the normalization statistics only.
    """
    nby, nbx = -(-shape[0] // block), -(-shape[1] // block)
    digest = int(hashlib.sha256(f"{key}:{seed}".encode()).hexdigest()[:8], 16)
    order = np.random.default_rng(digest).permutation(nby * nbx)
    if labelled is not None and labelled.any():
        order = order[labelled_blocks(labelled, block).ravel()[order]]
    n = len(order)
    n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
    n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
    ids = np.zeros(nby * nbx, dtype="uint8")
    ids[order[n - n_val - n_test: n - n_test]] = SPLITS["val"]
    ids[order[n - n_test:]] = SPLITS["test"]
    blocks = da.from_array(ids.reshape(nby, nbx), chunks=(max(1, 1024 // block),) * 2)
    return blocks.repeat(block, axis=0).repeat(block, axis=1)[: shape[0], : shape[1]]


def band_statistics(image: xr.DataArray, region: xr.DataArray | da.Array | np.ndarray, *,
                    percentiles: tuple[float, float] = CLIP_PERCENTILES, sample: int = 1_000_000) -> dict:
    """Per-band robust statistics of the valid pixels inside ``region`` (the training area): the ``percentiles``
    (``low``, ``high``; from a regular sample of about ``sample`` pixels), then the mean and standard deviation
    of the values clipped to them, so a few saturated roofs or specular glints cannot stretch the scale."""
    region_da = region if isinstance(region, xr.DataArray) else xr.DataArray(region, dims=("y", "x"))
    inside = image.where(region_da.data.astype(bool))
    low, high = band_percentiles(inside, percentiles, sample=sample)
    clipped = clip_bands(inside, low, high)
    mean, std = da.compute(clipped.mean(("y", "x"), skipna=True).data, clipped.std(("y", "x"), skipna=True).data)
    std = np.where(np.asarray(std) > 0, std, 1.0)
    return {"mean": np.asarray(mean, dtype="float32"), "std": np.asarray(std, dtype="float32"),
            "low": low.astype("float32"), "high": high.astype("float32")}


def band_percentiles(image: xr.DataArray, percentiles: tuple[float, ...], *,
                     sample: int = 1_000_000) -> np.ndarray:
    """(len(percentiles), band) percentiles of each band's valid pixels, from a regular sample of about
    ``sample`` pixels (every pixel of a smaller image); NaN for a band without a valid pixel."""
    step = max(1, int(np.ceil(np.sqrt(image.sizes["y"] * image.sizes["x"] / sample))))
    thinned = np.asarray(image[:, ::step, ::step].values, dtype="float64").reshape(image.sizes["band"], -1)
    out = np.full((len(percentiles), len(thinned)), np.nan)
    for b, values in enumerate(thinned):
        values = values[np.isfinite(values)]
        if values.size:
            out[:, b] = np.percentile(values, percentiles)
    return out


def _per_band(values: np.ndarray, image: xr.DataArray) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype="float32"), dims="band", coords={"band": image.band})


def clip_bands(image: xr.DataArray, low: np.ndarray | None, high: np.ndarray | None) -> xr.DataArray:
    """Each band clipped to its [low, high] (NaN bounds and NaN pixels left as they are)."""
    if low is None or high is None:
        return image
    low, high = np.nan_to_num(low, nan=-np.inf), np.nan_to_num(high, nan=np.inf)
    return image.clip(_per_band(low, image), _per_band(high, image))


def normalize(image: xr.DataArray, mean: np.ndarray, std: np.ndarray, *, low: np.ndarray | None = None,
              high: np.ndarray | None = None) -> xr.DataArray:
    """Standardize each band with statistics from the training area: clip to [low, high] when given (the
    training area's percentiles), then (x - mean) / std."""
    return (clip_bands(image, low, high) - _per_band(mean, image)) / _per_band(std, image)


def geobox_key(geobox: GeoBox) -> str:
    """A short id of a grid, the same for every run over the same area."""
    text = f"{geobox.crs.to_wkt()}|{tuple(geobox.affine)}|{geobox.shape}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]

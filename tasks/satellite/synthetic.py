"""A synthetic Sentinel-2 L2A-like area: real GeoTIFFs per band and tile, clouds, nodata edges, labels.

Land cover comes from smooth random fields with class-specific spectra; a forest clearing grows with the
acquisition date, so successive monitoring runs see change, and cropland greens up and down with the season.
"""

from __future__ import annotations

from datetime import date as Date
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin
from scipy import ndimage

CLASSES = ["water", "forest", "cropland", "urban", "bare"]
BANDS_10M = ["B02", "B03", "B04", "B08"]
BANDS_20M = ["B11", "B12"]
# Surface reflectance per class for B02, B03, B04, B08, B11, B12.
SPECTRA = np.array([
    [0.060, 0.050, 0.030, 0.020, 0.010, 0.008],
    [0.030, 0.060, 0.030, 0.350, 0.150, 0.070],
    [0.050, 0.090, 0.060, 0.420, 0.250, 0.120],
    [0.110, 0.135, 0.160, 0.235, 0.320, 0.275],
    [0.120, 0.150, 0.180, 0.250, 0.350, 0.300],
], dtype="float32")
SCL_FOR_CLASS = np.array([6, 4, 4, 5, 5], dtype="uint8")
SCL_CLOUD, SCL_NODATA = 9, 0
ORIGIN = (600_000.0, 5_000_000.0)


def land_cover(size: int, *, seed: int = 7, when: Date = Date(2024, 1, 1)) -> np.ndarray:
    """Class ids (0..4) on a ``size`` x ``size`` 10 m grid; a clearing in the forest grows through the year."""
    rng = np.random.default_rng(seed)
    fields = []
    for _ in CLASSES:
        coarse = rng.normal(size=(6, 6))
        fields.append(ndimage.zoom(coarse, size / 6, order=3)[:size, :size])
    classes = np.argmax(np.stack(fields), axis=0).astype("uint8")
    forest = np.argwhere(classes == 1)
    if len(forest):
        cy, cx = forest[len(forest) // 2]
        radius = 4 + size * 0.12 * when.timetuple().tm_yday / 365
        yy, xx = np.mgrid[:size, :size]
        clearing = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        classes[clearing & (classes == 1)] = 4
    return classes


def reflectance(classes: np.ndarray, *, when: Date, seed: int) -> np.ndarray:
    """Band x y x x reflectance for a class map: class spectra, seasonal cropland, texture and noise."""
    rng = np.random.default_rng(seed)
    spectra = SPECTRA.copy()
    season = 0.5 + 0.5 * np.sin(2 * np.pi * (when.timetuple().tm_yday - 100) / 365)
    spectra[2, 3] = 0.25 + 0.25 * season
    spectra[2, 2] = 0.09 - 0.04 * season
    image = spectra[classes].transpose(2, 0, 1)
    texture = ndimage.gaussian_filter(rng.normal(size=classes.shape), 2).astype("float32")
    # Urban looks like bare soil on average; its roofs and streets (3 px blocks) tell it apart in context.
    blocks = rng.choice([0.65, 1.35], size=(-(-classes.shape[0] // 3), -(-classes.shape[1] // 3)))
    roofs = np.kron(blocks, np.ones((3, 3)))[: classes.shape[0], : classes.shape[1]].astype("float32")
    texture = np.where(classes == CLASSES.index("urban"), (roofs - 1) / 0.15, texture)
    image = image * (1 + 0.15 * texture) + rng.normal(0, 0.015, size=image.shape).astype("float32")
    return np.clip(image, 0.001, 1.0).astype("float32")


def cloud_mask(shape: tuple[int, int], *, cover: float, seed: int) -> np.ndarray:
    """Blobby clouds covering about ``cover`` of the image."""
    if cover <= 0:
        return np.zeros(shape, bool)
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), max(shape) / 16)
    return field > np.quantile(field, 1 - cover)


def _write(path: Path, data: np.ndarray, transform, crs: str, *, nodata: int = 0) -> None:
    data = data[None] if data.ndim == 2 else data
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    if data.shape[1] < 256 or data.shape[2] < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _sample_world(world: np.ndarray, crs: str, transform, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour sample of a world-grid array (in EPSG:32632) at the pixel centres of another grid."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
    wx, wy = Transformer.from_crs(crs, "EPSG:32632", always_xy=True).transform(np.asarray(xs), np.asarray(ys))
    wc = np.floor((np.asarray(wx) - ORIGIN[0]) / 10).astype(int)
    wr = np.floor((ORIGIN[1] - np.asarray(wy)) / 10).astype(int)
    inside = (wr >= 0) & (wr < world.shape[-2]) & (wc >= 0) & (wc < world.shape[-1])
    out = np.zeros(world.shape[:-2] + (rows.size,), dtype=world.dtype)
    out[..., inside] = world[..., wr[inside], wc[inside]]
    return out.reshape(world.shape[:-2] + shape)


def write_synthetic_scenes(folder: str | Path, *, when: Date | str = Date(2024, 6, 1), size: int = 320,
                           tile: int = 192, cloud_cover: float = 0.08, two_zones: bool = False,
                           seed: int = 7) -> dict:
    """Write one acquisition of a 2 x 2 tile area to ``folder`` and return what was written.

    Each tile gets ``S2_T<i>_<yyyymmdd>_<band>.tif`` files (10 m bands, 20 m bands, 20 m SCL cloud mask)
    and the area a 10 m ``labels.tif`` (0 = unlabelled, class i + 1). With ``two_zones`` the last tile is
    delivered in UTM zone 33 (EPSG:32633), as tiles near a zone border are.
    """
    when = Date.fromisoformat(when) if isinstance(when, str) else when
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classes = land_cover(size, seed=seed, when=when)
    stamp = when.strftime("%Y%m%d")
    day_seed = seed * 100_000 + when.toordinal()
    world = reflectance(classes, when=when, seed=day_seed)
    world_scl = SCL_FOR_CLASS[classes]
    offset = size - tile
    origins = [(0, 0), (0, offset), (offset, 0), (offset, offset)]
    written = []
    for i, (r0, c0) in enumerate(origins):
        crs = "EPSG:32633" if two_zones and i == len(origins) - 1 else "EPSG:32632"
        x0, y0 = ORIGIN[0] + c0 * 10, ORIGIN[1] - r0 * 10
        if crs == "EPSG:32632":
            bands = world[:, r0:r0 + tile, c0:c0 + tile]
            scl10 = world_scl[r0:r0 + tile, c0:c0 + tile]
        else:
            x0, y0 = Transformer.from_crs("EPSG:32632", crs, always_xy=True).transform(x0, y0)
            x0, y0 = round(x0 / 20) * 20, round(y0 / 20) * 20
            bands = _sample_world(world, crs, from_origin(x0, y0, 10, 10), (tile, tile))
            scl10 = _sample_world(world_scl, crs, from_origin(x0, y0, 10, 10), (tile, tile))
        clouds = cloud_mask((tile, tile), cover=cloud_cover, seed=day_seed + i)
        bands = np.where(clouds, 0.55 + 0.05 * np.arange(len(bands), dtype="float32")[:, None, None], bands)
        dn = np.clip(np.round(bands * 10_000), 1, 65_535).astype("uint16")
        scl = np.where(clouds, SCL_CLOUD, scl10).astype("uint8")
        edge = np.add.outer(np.arange(tile), np.arange(tile)) < (tile // 4 if i % 2 else 0)
        dn[:, edge] = 0
        scl[edge] = SCL_NODATA
        stem = folder / f"S2_T{i + 1}_{stamp}"
        t10, t20 = from_origin(x0, y0, 10, 10), from_origin(x0, y0, 20, 20)
        for b, name in enumerate(BANDS_10M):
            _write(Path(f"{stem}_{name}.tif"), dn[b], t10, crs)
        for b, name in enumerate(BANDS_20M, start=len(BANDS_10M)):
            coarse = dn[b].reshape(tile // 2, 2, tile // 2, 2).astype("float32")
            valid = coarse > 0
            mean = coarse.sum(axis=(1, 3)) / np.maximum(valid.sum(axis=(1, 3)), 1)
            _write(Path(f"{stem}_{name}.tif"), np.round(mean).astype("uint16"), t20, crs)
        _write(Path(f"{stem}_SCL.tif"), scl[::2, ::2], t20, crs)
        written.append(str(stem))
    labels = (classes + 1).astype("uint8")
    rng = np.random.default_rng(seed)
    for _ in range(6):
        r, c = rng.integers(0, size - 40, 2)
        labels[r:r + 40, c:c + 40] = 0
    labels_path = folder / "labels.tif"
    _write(labels_path, labels, from_origin(*ORIGIN, 10, 10), "EPSG:32632")
    return {"scenes": written, "labels": str(labels_path), "classes": CLASSES, "date": when.isoformat()}


def example(folder: Path) -> dict:
    """A tiny input of the local source: four overlapping 80-pixel tiles and a label raster beside them; the
    parameters that run on it."""
    written = write_synthetic_scenes(Path(folder) / "scenes", when="2024-06-01", size=128, tile=80)
    labels = Path(written["labels"]).rename(Path(folder) / "labels.tif")
    return {"source": "local", "input": str(Path(folder) / "scenes"), "labels": str(labels)}

"""Labels onto the mosaic grid: polygons rasterized, label rasters resampled; polygons outside every scene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from rasterio import features
from shapely.geometry.base import BaseGeometry

UNLABELLED = -1


def class_names_of(values: pd.Series) -> list[str]:
    return sorted({str(v) for v in values.dropna()})


def polygons_outside(gdf, footprints: list[BaseGeometry]) -> pd.Series:
    """A quarantine reason for each polygon that touches no scene footprint, None for the others."""
    reasons = []
    for geom in gdf.geometry:
        if geom is None or geom.is_empty:
            reasons.append("empty geometry")
        elif not any(geom.intersects(fp) for fp in footprints):
            reasons.append("label polygon outside every scene")
        else:
            reasons.append(None)
    return pd.Series(reasons, index=gdf.index, dtype=object)


def rasterize_polygons(gdf, column: str, geobox: GeoBox, class_names: list[str]) -> np.ndarray:
    """Class index per pixel (UNLABELLED outside polygons); ``gdf`` must be in the grid's CRS."""
    index = {name: i for i, name in enumerate(class_names)}
    shapes = [(geom, index[str(value)]) for geom, value in zip(gdf.geometry, gdf[column], strict=True)
              if geom is not None and str(value) in index]
    if not shapes:
        return np.full(geobox.shape.yx, UNLABELLED, dtype="int16")
    return features.rasterize(shapes, out_shape=geobox.shape.yx, transform=geobox.affine, fill=UNLABELLED,
                              dtype="int16")


def raster_labels_on_grid(labels: xr.DataArray, geobox: GeoBox) -> tuple[np.ndarray, list[str]]:
    """A label raster (0 = unlabelled, classes 1..K) resampled by nearest neighbour onto the grid."""
    from tasks.satellite.grid import resample_to_grid

    on_grid = resample_to_grid(labels.astype("float32"), geobox, resampling="nearest").values
    values = np.nan_to_num(on_grid, nan=0).astype("int16")
    classes = sorted(int(v) for v in np.unique(values) if v > 0)
    lookup = np.full(int(values.max()) + 1 if values.size else 1, UNLABELLED, dtype="int16")
    for i, v in enumerate(classes):
        lookup[v] = i
    return lookup[values], classes

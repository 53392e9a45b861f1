"""Shared fixtures: a Prefect test server for flow tests and tiny georeferenced rasters built in the test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_harness(tessera_prefect):
    """The plugin's session Prefect server (tasks/testing.py), so every CI run exercises the plugin."""
    yield


@pytest.fixture
def data_root(tessera_data_root: Path) -> Path:
    return tessera_data_root


def write_raster(path: Path, data: np.ndarray, *, origin: tuple[float, float] = (600_000.0, 5_000_000.0),
                 res: float = 10.0, crs: str | None = "EPSG:32632", nodata: float | None = 0,
                 descriptions: list[str] | None = None) -> Path:
    """A small GeoTIFF: ``data`` is (y, x) or (band, y, x)."""
    data = data[None] if data.ndim == 2 else data
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "transform": from_origin(*origin, res, res), "nodata": nodata}
    if crs:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, name)
    return path

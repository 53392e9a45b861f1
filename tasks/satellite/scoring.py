"""The class map: the fully-convolutional model applied chunk by chunk, with a halo, over the mosaic."""

from __future__ import annotations

import dask.array as da
import numpy as np
import torch
import xarray as xr
from torch import nn

from tasks.insight import apply_calibration

NODATA_CLASS = 255


def classify_block(block: np.ndarray, model: nn.Module, calibration: dict | None = None) -> np.ndarray:
    """(band, y, x) normalized values to (2, y, x): class id (NODATA_CLASS where any band is NaN), confidence;
    probabilities go through the model's calibration when it has one."""
    valid = np.isfinite(block).all(axis=0)
    x = torch.from_numpy(np.nan_to_num(block, nan=0.0).astype("float32"))[None]
    with torch.no_grad():
        proba = torch.softmax(model(x), dim=1)[0].numpy()
    if calibration:
        flat = apply_calibration(calibration, proba.reshape(len(proba), -1).T)
        proba = flat.T.reshape(proba.shape)
    out = np.empty((2,) + block.shape[1:], dtype="float32")
    out[0] = np.where(valid, proba.argmax(axis=0), NODATA_CLASS)
    out[1] = np.where(valid, proba.max(axis=0), np.nan)
    return out


def classify_image(image: xr.DataArray, model: nn.Module, *, halo: int = 8,
                   calibration: dict | None = None) -> xr.Dataset:
    """Class id and confidence for every pixel of a (band, y, x) image; lazy, one Dask task per chunk.

    Chunks overlap by ``halo`` pixels (at least the model's receptive radius), so tile edges do not show.
    """
    model = model.cpu().eval()
    data = image.data if isinstance(image.data, da.Array) else da.from_array(image.data, chunks=(-1, 1024, 1024))
    data = data.rechunk({0: -1})
    depth = {0: 0, 1: halo, 2: halo}
    padded = da.overlap.overlap(data, depth=depth, boundary="none")
    scored = padded.map_blocks(classify_block, model, calibration, dtype="float32",
                               chunks=((2,),) + padded.chunks[1:])
    result = da.overlap.trim_internal(scored, depth, boundary="none")
    coords = {k: v for k, v in image.coords.items() if "band" not in v.dims}
    return xr.Dataset({
        "class": (("y", "x"), result[0].astype("uint8")),
        "confidence": (("y", "x"), result[1]),
    }, coords=coords)

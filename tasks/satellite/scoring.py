"""The class map: the fully-convolutional model applied chunk by chunk, with a halo, over the mosaic."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dask.array as da
import numpy as np
import torch
import xarray as xr
from torch import nn

from models.train import predict_proba_mc
from tasks.cog import write_cogs
from tasks.compute import returning_freed_memory
from tasks.insight import apply_calibration
from tasks.satellite.files import SatelliteFiles

NODATA_CLASS = 255
# Side of a scoring tile in pixels, a multiple of every network's pooling factor. A U-Net's activations over a
# 1080-pixel tile take about 2 GB, so 512 keeps two tiles at once (one per core) well under 2 GB.
TILE = 512
# Monte Carlo dropout seeds torch's global generator and flips the model's dropout layers to training mode:
# one chunk at a time per process, so concurrent Dask threads neither share draws nor see each other's mode.
_MC_LOCK = threading.Lock()


def block_seed(seed: int, row: int, col: int) -> int:
    """The seed of the dropout draws for the chunk starting at (row, col): the same chunk gets the same draws
    in every run, whatever order the chunks are computed in."""
    return int(np.random.SeedSequence([seed, row, col]).generate_state(1)[0])


def torch_threads_per_task() -> int | None:
    """Torch threads for one task of a Dask worker: the cores over the tasks it runs at once; None outside one."""
    try:
        from distributed import get_worker

        tasks = get_worker().state.nthreads
    except (ImportError, ValueError):
        return None
    return max(1, (os.cpu_count() or 1) // max(1, tasks))


@contextmanager
def torch_threads_of_this_task() -> Iterator[None]:
    """Torch on this Dask task's share of the cores, restored after. Torch's default, every core in every
    task, oversubscribes them (40% more CPU time and 1.35x the time in benchmarks/satellite_scoring.py). The
    setting belongs to the calling thread, and is restored so threads started later keep torch's default."""
    threads, before = torch_threads_per_task(), torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def classify_block(block: np.ndarray, model: nn.Module, calibration: dict | None = None, *, mc_samples: int = 0,
                   seed: int = 0, block_info: dict | None = None) -> np.ndarray:
    """(band, y, x) normalized values to (2, y, x): class id (NODATA_CLASS where any band is NaN), confidence;
    probabilities go through the model's calibration when it has one.

    With ``mc_samples`` > 1 the probabilities are the mean of that many Monte Carlo dropout passes (seeded from
    ``seed`` and the chunk's place in the array, ``block_info`` from Dask) and a third layer holds their
    predictive entropy in nats (before calibration, as for the test pixels), NaN where any band is NaN."""
    valid = np.isfinite(block).all(axis=0)
    x = torch.from_numpy(np.nan_to_num(block, nan=0.0).astype("float32"))[None].contiguous(
        memory_format=torch.channels_last)
    entropy = None
    if mc_samples and mc_samples > 1:
        where = (block_info or {}).get(0, {}).get("array-location", [(0, 0), (0, 0), (0, 0)])
        with _MC_LOCK, torch_threads_of_this_task():
            mean, entropy = predict_proba_mc(model, x, samples=mc_samples, seed=block_seed(seed, where[1][0],
                                             where[2][0]), batch_size=1, device="cpu")
        proba, entropy = mean[0], entropy[0]
    else:
        with torch.no_grad(), torch_threads_of_this_task():
            proba = torch.softmax(model(x), dim=1)[0].numpy()
    if calibration:
        flat = apply_calibration(calibration, proba.reshape(len(proba), -1).T)
        proba = flat.T.reshape(proba.shape)
    out = np.empty((2 if entropy is None else 3,) + block.shape[1:], dtype="float32")
    out[0] = np.where(valid, proba.argmax(axis=0), NODATA_CLASS)
    out[1] = np.where(valid, proba.max(axis=0), np.nan)
    if entropy is not None:
        out[2] = np.where(valid, entropy, np.nan)
    return out


def tile_sizes(size: int, halo: int, tile: int = TILE) -> tuple[int, ...]:
    """Tile sides along one axis of ``size`` pixels: whole tiles, then the rest, joined to the last tile when
    shorter than the halo (Dask's overlap needs every chunk at least that long, and would otherwise rechunk
    off the tile grid)."""
    sizes = [tile] * (size // tile)
    rest = size % tile
    if rest and sizes and rest < halo:
        sizes[-1] += rest
    elif rest:
        sizes.append(rest)
    return tuple(sizes)


def classify_image(image: xr.DataArray, model: nn.Module, *, halo: int = 8, calibration: dict | None = None,
                   mc_samples: int = 0, seed: int = 0, tile: int = TILE) -> xr.Dataset:
    """Class id and confidence for every pixel of a (band, y, x) image, and with ``mc_samples`` > 1 the
    Monte Carlo dropout ``uncertainty``; lazy, one Dask task per tile.

    Tiles overlap by ``halo`` pixels (at least the model's receptive radius) and are cropped by it, so tile
    edges do not show. With ``tile`` and ``halo`` multiples of a network's pooling factor, every tile starts on
    its pooling grid, and the map equals one pass over the whole image. Tiles run channels-last: torch's CPU
    convolutions then take about 25% less time and memory than with its default layout.
    """
    model = copy.deepcopy(model).cpu().eval().to(memory_format=torch.channels_last)
    data = image.data if isinstance(image.data, da.Array) else da.from_array(image.data)
    data = data.rechunk({0: -1, 1: tile_sizes(data.shape[1], halo, tile), 2: tile_sizes(data.shape[2], halo, tile)})
    depth = {0: 0, 1: halo, 2: halo}
    padded = da.overlap.overlap(data, depth=depth, boundary="none")
    layers = 3 if mc_samples and mc_samples > 1 else 2
    scored = padded.map_blocks(classify_block, model, calibration, mc_samples=mc_samples, seed=seed,
                               dtype="float32", chunks=((layers,),) + padded.chunks[1:])
    result = da.overlap.trim_internal(scored, depth, boundary="none")
    coords = {k: v for k, v in image.coords.items() if "band" not in v.dims}
    layers_out = {"class": (("y", "x"), result[0].astype("uint8")), "confidence": (("y", "x"), result[1])}
    if layers == 3:
        layers_out["uncertainty"] = (("y", "x"), result[2])
    return xr.Dataset(layers_out, coords=coords)


LAYERS = {"class": (SatelliteFiles.classmap, NODATA_CLASS), "confidence": (SatelliteFiles.confidence, float("nan")),
          "uncertainty": (SatelliteFiles.uncertainty, float("nan"))}  # layer: (file in the run folder, nodata)


def write_class_maps(image: xr.DataArray, model: nn.Module, folder: str | Path, crs: str, *,
                     calibration: dict | None = None, mc_samples: int = 0, seed: int = 0) -> dict[str, str]:
    """``classify_image`` over a (band, y, x) image written as COGs into ``folder``: ``{layer: path}`` for the
    class map, its confidence and, with ``mc_samples`` > 1, the uncertainty. Memory freed while the tiles run
    goes back to the OS at once: two tiles in flight otherwise fragment glibc's heaps (a 4096² mosaic peaked at
    2.0 GB, now 1.4 GB, for about 20% more time; benchmarks/satellite_scoring.py)."""
    scored = classify_image(image, model, halo=model.halo, calibration=calibration, mc_samples=mc_samples,
                            seed=seed)
    names = [name for name in LAYERS if name in scored]
    layers = {str(Path(folder) / LAYERS[name][0].name): (scored[name].rio.write_crs(crs), LAYERS[name][1])
              for name in names}
    with returning_freed_memory():
        return dict(zip(names, write_cogs(layers), strict=True))


def uncertainty_summary(uncertainty: np.ndarray, classes: np.ndarray, class_names: list[str]) -> dict:
    """Where the class map is unsure: mean, median, 95th percentile and maximum of the per-pixel uncertainty
    (predictive entropy, nats; at most ln(classes)) over valid pixels, and the mean per predicted class."""
    valid = np.isfinite(uncertainty) & (classes < len(class_names))
    values = uncertainty[valid]
    if not values.size:
        return {"pixels": 0}
    per_class = {name: float(values[classes[valid] == i].mean())
                 for i, name in enumerate(class_names) if (classes[valid] == i).any()}
    return {"pixels": int(values.size), "mean": float(values.mean()), "median": float(np.median(values)),
            "p95": float(np.percentile(values, 95)), "max": float(values.max()),
            "max_possible": float(np.log(len(class_names))), "per_class_mean": per_class}

"""Benchmark: tessera's class-map scoring stage against a plain PyTorch tile loop over the same Zarr mosaic.

Not a test: it writes a synthetic (band, y, x) float32 reflectance mosaic as the product stores one
(``tasks.store.write_zarr``: chunks of all bands x 1024 x 1024, 10 m UTM grid in EPSG:32633, CRS in ``attrs`` and
``spatial_ref``; smooth fields plus noise, 0..0.5 with a little clipping, and a no-data (NaN) corner), then scores
it twice, each path in a fresh subprocess of this script so its peak RSS is its own (``VmHWM`` from benchmarks/
_rss.py; not ``ru_maxrss``, which a child started by subprocess inherits from the parent that built the mosaic):

- ``tessera``: what ``tasks/satellite/tasks.py:score_class_map`` does without the model registry and Prefect:
  ``open_zarr``, ``_normalized(ds, stats)`` and ``scoring.write_class_maps`` (``classify_image`` with the
  model's halo, the class map, nodata 255, and the confidence, nodata NaN, through ``cog.write_cogs``), under
  ``compute.dask_client()`` as a flow runs it (a distributed LocalCluster, one in-process worker with a thread per
  core; ``TESSERA_DASK_ADDRESS`` is honoured as in the product). The cluster start is not timed.
- ``plain``: the same tile grid (``scoring.tile_sizes``, tiles of ``scoring.TILE``, with ``model.halo`` pixels
  of overlap, clipped at the image edge), one tile after another: the window with its halo read by zarr-python,
  clipped and standardized with NumPy, a ``torch.no_grad()`` forward + softmax, the halo cropped, argmax (255
  where a band is NaN) and max written into tiled deflate GeoTIFFs (512 blocks) through rasterio windows, then
  converted to COG with ``rasterio.shutil.copy(driver="COG")`` as ``write_cogs`` does.

Model: ``models.satellite.UNet(in_bands=bands, n_classes=8, width=32, depth=2)`` with ``torch.manual_seed(0)`` in
eval mode (random weights: this measures speed and equality). The plain loop runs one tile at a time on torch's
default threads (one per core, or ``--threads``); tessera runs a tile per Dask thread, each on its share of the
cores (``scoring.torch_threads_of_this_task``), channels-last, with freed memory handed back to the OS at once
(``compute.returning_freed_memory``). Before, every task used every core, on 1024-px tiles: 2048 px on 2 cores
took 1.35x the plain loop's time and 3.6 GB.
Times run from opening the Zarr to the COGs on disk. The outputs are compared pixel by pixel; ``ratio`` is
tessera seconds / plain seconds (below 1: tessera is faster). ``other_cpu_share`` is the share of the cores other
processes kept busy meanwhile: well above 0, the times are not clean.

    .venv/bin/python benchmarks/satellite_scoring.py                   # a full Sentinel-2 tile, 10980^2 x 4 bands
    .venv/bin/python benchmarks/satellite_scoring.py --size 2048       # quick check
    .venv/bin/python benchmarks/satellite_scoring.py --keep /tmp/ss    # keep the mosaic and the maps

Exit status: 0 when the class maps agree, 1 when more than 1e-5 of their pixels differ, 2 when a path fails.
tessera runs torch on one core per Dask task, the plain loop on all of them: the sums run in another order, so
a pixel whose two most likely classes are within float rounding (~1e-7) may take the other one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _rss import own_peak_rss_mb  # benchmarks/_rss.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CRS = "EPSG:32633"
ORIGIN = (399_960.0, 5_300_040.0)  # top-left corner of a Sentinel-2 tile in UTM 33N
RES = 10.0
CHUNK = 1024
CLASSES = 8
STATS = {"mean": 0.25, "std": 0.1, "low": 0.0, "high": 0.5}
MAX_DIFFERING_SHARE = 1e-5


def band_stats(bands: int) -> dict[str, list[float]]:
    """Per-band normalization statistics, as a model card holds them."""
    return {key: [value] * bands for key, value in STATS.items()}


def build_mosaic(target: Path, size: int, bands: int, seed: int = 0) -> None:
    """Write the synthetic mosaic lazily, chunk by chunk, with ``store.write_zarr``."""
    import dask.array as da
    import rioxarray  # noqa: F401
    import xarray as xr

    from tasks.store import write_zarr

    yy = da.arange(size, chunks=CHUNK, dtype="float32")[None, :, None]
    xx = da.arange(size, chunks=CHUNK, dtype="float32")[None, None, :]
    phase = np.arange(bands, dtype="float32")[:, None, None]
    smooth = 0.25 + 0.2 * da.sin(yy / 310 + 0.7 * phase) * da.cos(xx / 470 - 0.4 * phase)
    noise = da.random.default_rng(seed).random((bands, size, size), chunks=(bands, CHUNK, CHUNK), dtype="float32")
    values = smooth + 0.16 * (noise - 0.5)
    values = da.where(xx + yy < size // 6, np.float32("nan"), values).astype("float32")
    names = [f"B{i + 1:02d}" for i in range(bands)]
    coords = {"band": names, "y": ORIGIN[1] - RES * (np.arange(size) + 0.5),
              "x": ORIGIN[0] + RES * (np.arange(size) + 0.5)}
    ds = xr.Dataset({"reflectance": (("band", "y", "x"), values.rechunk((bands, CHUNK, CHUNK)))}, coords=coords)
    ds = ds.rio.write_crs(CRS)
    ds.attrs.update(crs=ds.rio.crs.to_wkt(), bands=json.dumps(names), resolution=RES)
    write_zarr(ds, target)


def make_model(bands: int):
    import torch

    from models.satellite import UNet

    torch.manual_seed(0)
    return UNet(in_bands=bands, n_classes=CLASSES, width=32, depth=2).eval()


def busy_cpu_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (all cores); NaN off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_tessera(mosaic: Path, out: Path, bands: int) -> dict:
    """The scoring stage as ``score_class_map`` runs it; seconds from ``open_zarr`` to the COGs."""
    import dask
    import rioxarray  # noqa: F401

    from tasks.compute import dask_client
    from tasks.satellite.classifier import normalized as _normalized
    from tasks.satellite.scoring import torch_threads_per_task, write_class_maps
    from tasks.store import open_zarr

    model = make_model(bands)
    t0 = time.perf_counter()
    with dask_client():
        cluster_s = time.perf_counter() - t0
        threads_in_tasks = dask.delayed(torch_threads_per_task)().compute()
        t0 = time.perf_counter()
        ds = open_zarr(mosaic)
        write_class_maps(_normalized(ds, band_stats(bands)), model, out, ds.attrs["crs"])
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "cluster_start_s": cluster_s, "torch_threads": threads_in_tasks}


def edges(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum((0,) + sizes).tolist()
    return list(zip(ends[:-1], ends[1:], strict=True))


def run_plain(mosaic: Path, out: Path, bands: int) -> dict:
    """One tile after another: zarr read, NumPy normalization, torch forward, rasterio windows, COG copy."""
    import rasterio
    import rasterio.shutil
    import torch
    import zarr
    from affine import Affine
    from rasterio.windows import Window

    from tasks.satellite.scoring import NODATA_CLASS, tile_sizes

    model = make_model(bands)
    halo = model.halo
    stats = {k: np.asarray(v, dtype="float32")[:, None, None] for k, v in band_stats(bands).items()}
    timings = dict.fromkeys(("read_s", "forward_s", "write_s", "cog_s"), 0.0)
    t0 = time.perf_counter()
    group = zarr.open_group(str(mosaic), mode="r")
    image = group["reflectance"]
    xs, ys = group["x"][:2], group["y"][:2]
    dx, dy = float(xs[1] - xs[0]), float(ys[1] - ys[0])
    transform = Affine.translation(xs[0] - dx / 2, ys[0] - dy / 2) * Affine.scale(dx, dy)
    _, height, width = image.shape
    common = {"driver": "GTiff", "width": width, "height": height, "count": 1, "crs": group.attrs["crs"],
              "transform": transform, "tiled": True, "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    staged = {name: out / f"{name}.staging.tif" for name in ("classmap", "confidence")}
    with rasterio.open(staged["classmap"], "w", dtype="uint8", nodata=NODATA_CLASS, **common) as classes, \
            rasterio.open(staged["confidence"], "w", dtype="float32", nodata=float("nan"), **common) as confidence:
        for r0, r1 in edges(tile_sizes(height, halo)):
            for c0, c1 in edges(tile_sizes(width, halo)):
                t = time.perf_counter()
                y0, y1, x0, x1 = max(0, r0 - halo), min(height, r1 + halo), max(0, c0 - halo), min(width, c1 + halo)
                block = image[:, y0:y1, x0:x1]
                timings["read_s"] += time.perf_counter() - t
                t = time.perf_counter()
                valid = np.isfinite(block).all(axis=0)[r0 - y0:r1 - y0, c0 - x0:c1 - x0]
                normalized = (np.clip(block, stats["low"], stats["high"]) - stats["mean"]) / stats["std"]
                with torch.no_grad():
                    logits = model(torch.from_numpy(np.nan_to_num(normalized, nan=0.0))[None])
                    proba = torch.softmax(logits, dim=1)[0].numpy()[:, r0 - y0:r1 - y0, c0 - x0:c1 - x0]
                labels = np.where(valid, proba.argmax(axis=0), NODATA_CLASS).astype("uint8")
                best = np.where(valid, proba.max(axis=0), np.nan).astype("float32")
                timings["forward_s"] += time.perf_counter() - t
                t = time.perf_counter()
                window = Window(c0, r0, c1 - c0, r1 - r0)
                classes.write(labels, 1, window=window)
                confidence.write(best, 1, window=window)
                timings["write_s"] += time.perf_counter() - t
    t = time.perf_counter()
    for name, staging in staged.items():
        rasterio.shutil.copy(staging, out / f"{name}.tif", driver="COG", compress="deflate",
                             overview_resampling="nearest")
        staging.unlink()
    timings["cog_s"] = time.perf_counter() - t
    return {"seconds": time.perf_counter() - t0, "torch_threads": torch.get_num_threads(), **timings}


def child(path: str, workdir: Path, bands: int, threads: int | None) -> dict:
    """Run one path into ``workdir/path`` and describe it (this process's peak RSS included)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    out = workdir / path
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    busy0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    run = (run_tessera if path == "tessera" else run_plain)(workdir / "mosaic.zarr", out, bands)
    other = max(0.0, (busy_cpu_seconds() - busy0) - (own_cpu_seconds() - own0))
    return {**run, "peak_rss_mb": own_peak_rss_mb(), "cpu_s": own_cpu_seconds() - own0,
            "other_cpu_share": other / (run["seconds"] * (os.cpu_count() or 1))}


def run_child(path: str, workdir: Path, bands: int, threads: int | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--path", path, "--keep", str(workdir),
           "--bands", str(bands)] + (["--threads", str(threads)] if threads else [])
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} if threads else {})}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.stderr.write(done.stderr[-4000:])
        print(f"path={path} failed (exit {done.returncode})")
        raise SystemExit(2)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(first: Path, second: Path, rows: int = CHUNK) -> dict:
    """Class maps and confidences of two runs, strip by strip: differing class pixels, the largest confidence
    difference where both are valid, and whether their grids (size, transform, CRS, dtype, nodata) match."""
    import rasterio
    from rasterio.windows import Window

    differing, pixels, max_diff, grids = 0, 0, 0.0, True
    with rasterio.open(first / "classmap.tif") as a, rasterio.open(second / "classmap.tif") as b, \
            rasterio.open(first / "confidence.tif") as ca, rasterio.open(second / "confidence.tif") as cb:
        for x, y in ((a, b), (ca, cb)):
            grids &= (x.shape, x.transform, x.crs, x.dtypes, str(x.nodata)) == \
                     (y.shape, y.transform, y.crs, y.dtypes, str(y.nodata))
        for row in range(0, a.height, rows):
            window = Window(0, row, a.width, min(rows, a.height - row))
            differing += int((a.read(1, window=window) != b.read(1, window=window)).sum())
            pixels += window.width * window.height
            diff = np.abs(ca.read(1, window=window) - cb.read(1, window=window))
            max_diff = max(max_diff, float(np.nanmax(diff, initial=0.0)))
    return {"differing": differing, "equal_share": 1 - differing / pixels, "max_conf_diff": max_diff,
            "grids_equal": grids}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="mosaic side in pixels; default 10980 (a S2 tile)")
    parser.add_argument("--bands", type=int, default=4, help="bands of the mosaic; default 4")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the mosaic and maps there")
    parser.add_argument("--threads", type=int, help="torch threads in both paths; default torch's")
    parser.add_argument("--path", choices=("tessera", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.path:
        print(json.dumps(child(args.path, args.keep.resolve(), args.bands, args.threads)), flush=True)
        return 0

    workdir = (args.keep or Path(tempfile.mkdtemp(prefix="tessera-scoring-"))).resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build_mosaic(workdir / "mosaic.zarr", args.size, args.bands)
        zarr_mb = sum(p.stat().st_size for p in (workdir / "mosaic.zarr").rglob("*") if p.is_file()) / 2**20
        from tasks.satellite.scoring import TILE, tile_sizes

        halo = make_model(args.bands).halo
        grid = f"{len(tile_sizes(args.size, halo))}x{len(tile_sizes(args.size, halo))}"
        print(f"mosaic={workdir / 'mosaic.zarr'} size={args.size}x{args.size} bands={args.bands} "
              f"chunks={args.bands}x{CHUNK}x{CHUNK} zarr_mb={zarr_mb:.0f} build_seconds={time.perf_counter() - t0:.1f}")
        print(f"model=UNet(width=32,depth=2,classes={CLASSES}) tiles={grid} tile={TILE} halo={halo} "
              f"cpus={os.cpu_count()}", flush=True)
        mpix = args.size**2 / 1e6
        runs = {}
        for path in ("tessera", "plain"):
            run = runs[path] = run_child(path, workdir, args.bands, args.threads)
            extra = " ".join(f"{k}={run[k]:.2f}" for k in ("cluster_start_s", "read_s", "forward_s", "write_s",
                                                          "cog_s") if k in run)
            print(f"path={path} seconds={run['seconds']:.2f} mpix_s={mpix / run['seconds']:.2f} "
                  f"peak_rss_mb={run['peak_rss_mb']:.0f} cpu_s={run['cpu_s']:.1f} torch_threads={run['torch_threads']} "
                  f"other_cpu_share={run['other_cpu_share']:.2f} {extra}".rstrip(), flush=True)
        cmp = compare(workdir / "tessera", workdir / "plain")
        print(f"class_equal_share={cmp['equal_share']:.9f} class_differing_pixels={cmp['differing']} "
              f"confidence_max_abs_diff={cmp['max_conf_diff']:.3g} grids_equal={cmp['grids_equal']}")
        print(f"ratio={runs['tessera']['seconds'] / runs['plain']['seconds']:.3f}")
        return 0 if cmp["differing"] <= MAX_DIFFERING_SHARE * args.size**2 and cmp["grids_equal"] else 1
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

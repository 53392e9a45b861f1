"""Prefect tasks of the satellite pipeline: each reads URIs, calls plain functions, writes atomically.

Tasks return a small dict: ``output`` (the URI of what they wrote) and the counts the flow records.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio, also when the stages that read rasters were cached)
import torch
import xarray as xr
from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from torch import nn

from models.architectures import build
from models.card import Architecture, ModelCard
from models.lifecycle import (
    NO_HONEST_TEST,
    Decision,
    Fitted,
    honest_test,
    run_lifecycle,
    unit_keys,
    write_result,
)
from models.registry import ModelRegistry
from models.train import TrainConfig, predict_proba, predict_proba_mc, seed_everything, train_model
from models.tuning import split_values, tuned
from tasks import insight
from tasks.cog import write_cog
from tasks.common import save_quarantine
from tasks.compute import returning_freed_memory
from tasks.errors import BadInputError
from tasks.evaluate import classification_metrics
from tasks.monitor import feature_drift
from tasks.runs import list_runs
from tasks.satellite import grid, sources, training
from tasks.satellite import labels as labelling
from tasks.satellite.change import change_between, class_areas
from tasks.satellite.files import SatelliteFiles
from tasks.satellite.scoring import uncertainty_summary, write_class_maps
from tasks.store import (
    exists,
    fetch,
    join,
    open_zarr,
    read_json,
    read_parquet,
    write_bytes,
    write_json,
    write_parquet,
    write_zarr,
)

CACHED = {"cache_policy": INPUTS + TASK_SOURCE, "persist_result": True}
RASTER_LABELS = {".tif", ".tiff", ".jp2", ".vrt"}
_DATE = re.compile(r"(20\d{2})[-_]?(\d{2})[-_]?(\d{2})|(?:19|20)\d{2}(\d{3})")


@task(name="ingest scenes", **CACHED)
def ingest_scenes(run_dir: str, *, source: str, input: str | None, labels: str | None, date: str | None,
                  two_zones: bool = False, sentinelhub: dict | None = None) -> dict:
    """Bring scenes to a folder (synthetic, local or Sentinel Hub) and list their files."""
    folder = Path(run_dir) / "input"
    class_names = None
    if source == "synthetic":
        written = _synthetic(folder, date, two_zones)
        input_path, labels, class_names = str(folder), labels or written["labels"], written["classes"]
    elif source == "local":
        if not input:
            raise BadInputError("--source local needs --input: a folder or glob of GeoTIFF/JP2 files")
        input_path = fetch(input)
    elif source == "sentinelhub":
        from tasks.satellite.sentinelhub import fetch_sentinelhub_scenes

        fetch_sentinelhub_scenes(folder, **(sentinelhub or {}))
        input_path = str(folder)
    else:
        raise BadInputError(f"unknown --source {source!r}; choose synthetic, local or sentinelhub")
    labels = labels and fetch(labels)
    if labels and not Path(labels).exists():
        raise BadInputError(f"{labels}: labels file not found; pass --labels polygons (GeoPackage, GeoJSON, "
                            "Shapefile) or a label raster")
    scenes = sources.find_scenes(input_path, exclude=(labels,) if labels else ())
    table = pd.DataFrame([row for scene in scenes for row in scene.rows()])
    kind = None if not labels else "raster" if Path(labels).suffix.lower() in RASTER_LABELS else "polygons"
    files = SatelliteFiles(run_dir)
    manifest = {"scenes": write_parquet(table, files.scenes), "labels": labels,
                "label_kind": kind, "class_names": class_names, "source": source}
    return {"output": write_json(manifest, files.ingest), "scenes": len(scenes)}


def _synthetic(folder: Path, date: str | None, two_zones: bool) -> dict:
    from datetime import UTC, datetime

    from tasks.satellite.synthetic import write_synthetic_scenes

    return write_synthetic_scenes(folder, when=date or datetime.now(UTC).date().isoformat(), two_zones=two_zones)


@task(name="profile scenes", **CACHED)
def profile_scene_files(ingest_uri: str, run_dir: str, *, scale: float | None = None) -> dict:
    """Profile every scene and band; quarantine scenes with no clear pixel."""
    manifest = read_json(ingest_uri)
    scenes = sources.scenes_from_table(read_parquet(manifest["scenes"]))
    profile = sources.profile_scenes(scenes, scale=scale)
    clear = profile.groupby("scene", sort=False)["clear_fraction"].first()
    bad = clear[clear <= 0].index.tolist()
    if len(bad) == len(clear):
        raise BadInputError(f"every scene is entirely cloud or nodata ({', '.join(bad[:5])}); "
                            "choose other dates or add clearer scenes to the input")
    quarantined = pd.DataFrame({"kind": "scene", "record": bad,
                                "reason": "no clear pixels: the scene is entirely cloud or nodata"})
    files = SatelliteFiles(run_dir)
    save_quarantine([quarantined], files.quarantine)
    clean = profile[~profile["scene"].isin(bad)].assign(quarantined_share=len(bad) / len(clear))
    return {"output": write_parquet(clean, files.scene_profile),
            "records_in": len(clear), "records_valid": len(clear) - len(bad), "records_quarantined": len(bad),
            "pixels_saturated": int(clean["saturated_pixels"].sum()),
            "pixels_nodata": int(clean["nodata_pixels"].sum()),
            "encoding": _encoding_summary(clean)}


def _encoding_summary(profile: pd.DataFrame) -> dict:
    """How the scenes' numbers were read, for run.json: one entry per distinct (dtype, scale, saturation)."""
    kinds = profile.groupby(["dtype", "scale", "zero_is_fill"], dropna=False)["saturation"].first().reset_index()
    return {"reflectance": [{"dtype": r.dtype, "scale": r.scale, "saturation_value": r.saturation,
                             "zero_is_fill": bool(r.zero_is_fill)} for r in kinds.itertuples()]}


def _encodings(profile: pd.DataFrame) -> dict[tuple[str, int], sources.Encoding]:
    """The encoding the profile found for every (path, band index) of the scenes."""
    return {(r.path, int(r.index)): sources.Encoding(float(r.scale), None if pd.isna(r.saturation) else
                                                     float(r.saturation), bool(r.zero_is_fill))
            for r in profile.itertuples()}


def _scene_date(name: str) -> str:
    match = _DATE.search(name)
    return match.group(0) if match else ""


@task(name="mosaic scenes", **CACHED)
def mosaic_scenes(ingest_uri: str, profile_uri: str, run_dir: str, *, resolution: float | None = None,
                  crs: str | None = None, resampling: str = "average", method: str = "first",
                  label_column: str = "class", bands: list[str] | None = None, block: int = 64, seed: int = 0,
                  chunks: int = 1024) -> dict:
    """Resample every band onto one grid (fill and saturated values masked as the profile found them), mask
    clouds, mosaic, put labels and the spatial split beside it."""
    manifest = read_json(ingest_uri)
    profile = read_parquet(profile_uri)
    encodings = _encodings(profile)
    keep = set(profile["scene"])
    scenes = [s for s in sources.scenes_from_table(read_parquet(manifest["scenes"])) if s.scene in keep]
    scenes.sort(key=lambda s: (_scene_date(s.scene), s.scene), reverse=True)
    names = _common_bands(scenes, bands)
    boxes = [[sources.band_geobox(s.bands[b][0]) for b in names] for s in scenes]
    geobox = grid.target_geobox([box for scene in boxes for box in scene], crs=crs, resolution=resolution)
    clouds = profile.groupby("scene")["cloud_fraction"].first()
    if method not in grid.MOSAIC_METHODS:
        raise BadInputError(f"unknown --mosaic {method!r}; choose one of {', '.join(grid.MOSAIC_METHODS)}")
    if method == "median":
        stacks = []
        for scene in scenes:
            scene_bands = {b: sources.open_band(*scene.bands[b], chunks=chunks, encoding=encodings[scene.bands[b]])
                           for b in names}
            clear = sources.open_mask(scene.mask, scene.mask_kind, chunks=chunks) if scene.mask else None
            stacks.append(grid.scene_on_grid(scene_bands, geobox, clear=clear, resampling=resampling, chunks=chunks))
        image = grid.mosaic(stacks, method=method)
    else:
        if method == "least-cloudy":
            order = grid.least_cloudy_order([clouds.get(s.scene, np.nan) for s in scenes])
            scenes = [scenes[i] for i in order]
        image = sources.read_mosaic(scenes, names, geobox, resampling=resampling, chunks=chunks, encodings=encodings)
    footprints = [scene[0].extent.to_crs(geobox.crs).geom for scene in boxes]
    label_grid, class_names, label_counts = _labels_on_grid(manifest, geobox, footprints, label_column, run_dir)
    area = grid.geobox_key(geobox)
    labelled = label_grid != labelling.UNLABELLED
    asked, block = block, grid.fit_block(labelled, block, smallest=training.PATCH)
    split = grid.block_split(geobox.shape.yx, block=block, seed=seed, key=area, labelled=labelled)
    ds = xr.Dataset({
        "reflectance": image.astype("float32").chunk({"band": -1, "y": chunks, "x": chunks}),
        "labels": (("y", "x"), dask.array.from_array(label_grid, chunks=chunks)),
        "split": (("y", "x"), split.rechunk(chunks)),
    })
    ds.attrs.update(class_names=json.dumps(class_names), area=area, bands=json.dumps(names),
                    resolution=float(abs(geobox.resolution.x)), crs=geobox.crs.to_wkt(), block=block)
    with returning_freed_memory():
        uri = write_zarr(ds, SatelliteFiles(run_dir).mosaic)
    blocks = {"asked": asked, "used": block, "labelled_blocks": int(grid.labelled_blocks(labelled, block).sum()),
              "why": "the labels fall in fewer than 3 blocks of the asked size" if block != asked else ""}
    return {"output": uri, "area": area, "shape": list(geobox.shape.yx), "bands": names, "block": blocks,
            **label_counts}


def _common_bands(scenes: list[sources.Scene], wanted: list[str] | None) -> list[str]:
    first = list(scenes[0].bands)
    common = [b for b in first if all(b in s.bands for s in scenes)]
    if wanted:
        missing = [b for b in wanted if b not in common]
        if missing:
            raise BadInputError(f"--bands {','.join(missing)} not in every scene; "
                                f"bands present in all: {', '.join(common)}")
        return list(wanted)
    if not common:
        raise BadInputError(f"the scenes share no band names (first scene: {', '.join(first)}); "
                            "pass scenes of one product or choose --bands")
    return common


def _labels_on_grid(manifest: dict, geobox, footprints, column: str, run_dir: str):
    """Labels as class indices on the grid (UNLABELLED elsewhere), class names, polygon counts."""
    counts = {"labels_in": 0, "labels_quarantined": 0}
    if manifest["label_kind"] == "raster":
        label_da = sources.open_band(manifest["labels"], chunks=4096, raw=True)
        values, classes = labelling.raster_labels_on_grid(label_da, geobox)
        names = manifest["class_names"] or [f"class_{v}" for v in classes]
        if manifest["class_names"]:
            names = [manifest["class_names"][v - 1] for v in classes]
        return values, names, counts
    if manifest["label_kind"] == "polygons":
        gdf = sources.read_label_polygons(manifest["labels"], column).to_crs(geobox.crs)
        reasons = labelling.polygons_outside(gdf, footprints)
        valid, bad = gdf[reasons.isna()], gdf[reasons.notna()]
        quarantined = pd.DataFrame({"kind": "label_polygon", "record": [f"{manifest['labels']}#{i}" for i in bad.index],
                                    "reason": reasons[reasons.notna()].tolist()})
        save_quarantine([quarantined], SatelliteFiles(run_dir).quarantine)
        if valid.empty:
            raise BadInputError(f"{manifest['labels']}: no label polygon overlaps any scene; check the labels' CRS "
                                "and that they cover the scenes' area")
        names = labelling.class_names_of(valid[column])
        counts = {"labels_in": len(gdf), "labels_quarantined": len(bad)}
        return labelling.rasterize_polygons(valid, column, geobox, names), names, counts
    return np.full(geobox.shape.yx, labelling.UNLABELLED, dtype="int16"), [], counts


@task(name="normalization statistics", **CACHED)
def normalization_statistics(mosaic_uri: str, run_dir: str) -> dict:
    """Per-band robust statistics over the training split only: the p0.5/p99.5 clip range, then the mean and
    standard deviation of the clipped values."""
    ds = open_zarr(mosaic_uri)
    stats = grid.band_statistics(ds["reflectance"], ds["split"] == grid.SPLITS["train"])
    out = {"bands": json.loads(ds.attrs["bands"]), **{k: v.tolist() for k, v in stats.items()},
           "clip_percentiles": list(grid.CLIP_PERCENTILES), "region": "train split"}
    return {"output": write_json(out, SatelliteFiles(run_dir).normalization)}


def _normalized(ds: xr.Dataset, stats: dict) -> xr.DataArray:
    """The mosaic clipped and standardized with ``stats`` (a normalization.json or a model card's; cards written
    before clipping have no ``low``/``high`` and are only standardized)."""
    low, high = stats.get("low"), stats.get("high")
    return grid.normalize(ds["reflectance"], np.asarray(stats["mean"]), np.asarray(stats["std"]),
                          low=None if low is None else np.asarray(low, dtype=float),
                          high=None if high is None else np.asarray(high, dtype=float))


@task(name="profile mosaic", **CACHED)
def profile_mosaic(mosaic_uri: str, norm_uri: str, run_dir: str) -> dict:
    """A row per band of the model's input: coverage, the share of pixels outside the training area's clip
    range, and the mean, spread and p1/p99 of the normalized values."""
    ds = open_zarr(mosaic_uri)
    stats = read_json(norm_uri)
    norm = _normalized(ds, stats)
    raw = ds["reflectance"]
    valid = np.isfinite(raw)
    clipped = valid & (grid.clip_bands(raw, np.asarray(stats["low"]), np.asarray(stats["high"])) != raw)
    dims = ("y", "x")
    coverage, outside, mean, std = dask.compute(valid.mean(dims).data, clipped.sum(dims).data, norm.mean(dims).data,
                                                norm.std(dims).data)
    p1, p99 = grid.band_percentiles(norm, (1, 99))
    table = pd.DataFrame({"band": [str(b) for b in ds["band"].values], "coverage": coverage,
                          "clipped_share": outside / np.maximum(coverage * ds.sizes["y"] * ds.sizes["x"], 1),
                          "mean": mean, "std": std, "p1": p1, "p99": p99, "band_count": ds.sizes["band"]})
    return {"output": write_parquet(table, SatelliteFiles(run_dir).mosaic_profile)}


def _load_arrays(ds: xr.Dataset, stats: dict):
    """The normalized image stays lazy (patches are read window by window); labels and split are loaded."""
    labels, split = dask.compute(ds["labels"].data, ds["split"].data)
    return _normalized(ds, stats).data, labels, split


def _patches(image, labels, split, split_id: int, windows, patch: int, *,
             once: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read the windows of one split from the (lazy) image in one Dask computation, then mask the labels."""
    (taken,) = dask.compute(training.take_patches(image, windows, patch=patch))
    return training.extract_patches(np.asarray(taken), labels, split, split_id, windows, patch=patch, once=once)


ARCHITECTURES = {"unet": "UNet", "fcn": "PixelFCN"}
SEARCH = {"lr": ("log", 3e-4, 3e-3), "width": ("choice", [16, 32, 48]), "dropout": ("float", 0.0, 0.3)}  # --tune


def _architecture(model: str, bands: int, classes: int, width: int, tuned_kwargs: dict | None = None) -> Architecture:
    kwargs = {"in_bands": bands, "n_classes": classes, "width": width} | ({"depth": 2} if model == "unet" else {})
    return Architecture(name=ARCHITECTURES[model], kwargs=kwargs | (tuned_kwargs or {}))


def _fit_segmenter(arch: Architecture, train: tuple, val: tuple, *, epochs: int, batch_size: int,
                   seed: int, train_kwargs: dict | None = None) -> tuple[nn.Module, dict]:
    """A seeded segmentation network trained on (X, Y) patches in their eight orientations, with class weights
    from the training labels, early stopping on the validation patches. The weights are channels-last: torch's
    CPU convolutions then train about 20% faster on these patches."""
    n_classes = arch.kwargs["n_classes"]
    seed_everything(seed)
    model = build(arch).to(memory_format=torch.channels_last)
    counts = np.bincount(train[1][train[1] >= 0].ravel(), minlength=n_classes).astype("float32")
    weights = np.where(counts > 0, np.sqrt(counts.sum() / np.maximum(counts, 1) / n_classes), 0.0)
    weights = torch.tensor(weights, dtype=torch.float32)
    loss = nn.CrossEntropyLoss(weight=weights, ignore_index=labelling.UNLABELLED)
    history = train_model(model, training.FlippedPatches(*train), val, loss_fn=loss,
                          config=TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, patience=6,
                                             **(train_kwargs or {})))
    return model, history


def _block_folds(split: np.ndarray, labels: np.ndarray, folds: int, *, block: int, patch: int,
                 seed: int) -> np.ndarray:
    """Fold ids of the labelled training blocks (see training.block_folds); an error before any training when
    there are fewer such blocks than folds."""
    fold_ids = training.block_folds(split, labels, folds, block=block, patch=patch, seed=seed,
                                    pool_id=grid.SPLITS["train"])
    if (fold_ids >= 0).sum() < folds:
        raise BadInputError(f"--folds {folds} needs at least {folds} labelled training blocks, the area has "
                            f"{int((fold_ids >= 0).sum())}; use fewer folds or a smaller --block")
    return fold_ids


def _cross_validate(ds: xr.Dataset, labels: np.ndarray, split: np.ndarray, fold_ids: np.ndarray,
                    val_windows: list, class_names: list[str], arch: Architecture, *, block: int, patch: int,
                    epochs: int, batch_size: int, seed: int) -> dict:
    """Blocked spatial k-fold over the training blocks: each fold's blocks are held out in turn, a CNN is
    trained on the other training blocks (band statistics from those blocks only, early stopping on the
    validation blocks as for the main model) and scored on the held-out blocks. The test blocks are never used.
    Patches never cross a block edge, so no training patch reaches into a held-out block."""
    folds = int(fold_ids.max()) + 1
    scores, rows = [], []
    for fold in range(folds):
        fold_split = training.fold_split(split, fold_ids, fold, block=block, val_id=grid.SPLITS["val"])
        image = grid.normalize(ds["reflectance"], **grid.band_statistics(ds["reflectance"],
                                                                         fold_split == training.CV_TRAIN)).data
        train_windows = training.patch_windows(fold_split, labels, training.CV_TRAIN, patch=patch, block=block,
                                               random_per_block=8, seed=seed + fold)
        held_windows = training.patch_windows(fold_split, labels, training.CV_HELD, patch=patch, block=block)
        train = _patches(image, labels, fold_split, training.CV_TRAIN, train_windows, patch, once=False)
        val = _patches(image, labels, fold_split, training.CV_VAL, val_windows, patch)
        held = _patches(image, labels, fold_split, training.CV_HELD, held_windows, patch)
        model, _ = _fit_segmenter(arch, train, val, epochs=epochs, batch_size=batch_size, seed=seed + fold)
        proba, y = training.flatten_labelled(predict_proba(model, held[0]), held[1])
        scores.append(classification_metrics(y, proba.argmax(1), proba, class_names=class_names))
        rows.append({"fold": fold + 1, "blocks": int((fold_ids == fold).sum()), "pixels": int(len(y)),
                     **{k: scores[-1][k] for k in ("accuracy", "macro_f1", "cohen_kappa")}})
    return {"summary": insight.fold_summary(scores), "scheme": "blocked spatial k-fold over the training blocks",
            "folds": rows, "block": block, "block_folds": (fold_ids + 1).tolist(),
            "block_splits": np.asarray(split)[::block, ::block].tolist()}


def _scene_footprints(scenes_uri: str, crs: str) -> dict:
    """Each scene's footprint (the extent of its first band's raster) as a polygon in the grid CRS."""
    import rasterio
    from odc.geo.geom import box

    profile = read_parquet(scenes_uri)
    footprints = {}
    for scene, rows in profile.groupby("scene", sort=True):
        with rasterio.open(rows["path"].iloc[0]) as src:
            bounds, scene_crs = src.bounds, src.crs
        footprints[str(scene)] = box(*bounds, crs=scene_crs.to_wkt()).to_crs(crs).geom
    return footprints


def _test_scenes(ds: xr.Dataset, scenes_uri: str | None, windows: list, y_patches: np.ndarray,
                 patch: int) -> tuple[list[str], np.ndarray] | None:
    """Scene names and which scenes' footprints hold each labelled test pixel (rows in evaluation order)."""
    if not scenes_uri:
        return None
    footprints = _scene_footprints(scenes_uri, ds.attrs["crs"])
    rows, cols = training.labelled_positions(windows, y_patches, patch=patch)
    return list(footprints), training.scene_membership(footprints, ds["x"].values[cols], ds["y"].values[rows])


class SatelliteSpec:
    """The satellite domain for the model lifecycle: the blocks of the spatial split as the units (keyed by area,
    block size and position), a U-Net (or PixelFCN) fitted on patches of the training blocks with early stopping on the
    validation blocks, calibrated there, scored by macro F1 over the labelled pixels, each model on the mosaic
    normalized with its own training statistics."""

    def __init__(self, ds: xr.Dataset, stats: dict, image, labels: np.ndarray, split: np.ndarray, *,
                 settings: dict, run_dir: str, scenes_uri: str | None) -> None:
        self.ds, self.stats, self.image, self.labels, self.split = ds, stats, image, labels, split
        self.class_names, self.bands = json.loads(ds.attrs["class_names"]), json.loads(ds.attrs["bands"])
        self.block, self.settings = int(ds.attrs["block"]), settings
        self.run_dir, self.scenes_uri = run_dir, scenes_uri
        self.block_split = np.asarray(split)[::self.block, ::self.block]

    def keys(self) -> np.ndarray:
        rows, cols = np.indices(self.block_split.shape)
        return unit_keys(f"{self.ds.attrs['area']}|{self.block}|{r}|{c}" for r, c in zip(rows.ravel(), cols.ravel(),
                                                                                         strict=True))

    def compatible(self, card: ModelCard) -> bool:
        return card.bands == self.bands and (not self.class_names or card.class_names == self.class_names)

    def patches(self, card: ModelCard | None, units: np.ndarray, split_id: int) -> tuple[np.ndarray, np.ndarray, list]:
        """(X, Y, windows): the patches of the blocks at ``units`` (indices into the block grid) that belong to
        ``split_id``, normalized for the model with ``card`` (None: this run's statistics). Training blocks get
        extra randomly placed patches, as the challenger is trained on."""
        chosen = np.zeros(self.block_split.size, dtype=bool)
        chosen[units] = True
        inside = chosen.reshape(self.block_split.shape).repeat(self.block, 0).repeat(self.block, 1)
        sub = np.where(inside[: self.split.shape[0], : self.split.shape[1]], self.split, 255)
        patch, train = self.settings["patch"], split_id == grid.SPLITS["train"]
        windows = training.patch_windows(sub, self.labels, split_id, patch=patch, block=self.block,
                                         random_per_block=8 if train else 0, seed=self.settings["seed"])
        image = self.image if card is None else _champion_image(self.ds, card, self.image, self.stats)
        return (*_patches(image, self.labels, sub, split_id, windows, patch, once=not train), windows)

    def split_patches(self, card: ModelCard | None, *, test: np.ndarray | None = None) -> tuple[dict, dict]:
        """(data, windows) of every split: {name: (X, Y)} and {name: windows}; ``test``: only those test blocks."""
        blocks, data, windows = self.block_split.ravel(), {}, {}
        for name, split_id in grid.SPLITS.items():
            chosen = test if name == "test" and test is not None else np.flatnonzero(blocks == split_id)
            *data[name], windows[name] = self.patches(card, chosen, split_id)
        return data, windows

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        x, y, _ = self.patches(card, units, grid.SPLITS["val"])
        proba, y = training.flatten_labelled(predict_proba(model, x), y)
        return classification_metrics(y, proba.argmax(1), proba, class_names=self.class_names)["macro_f1"]

    def fit(self) -> Fitted:
        s, labels, split, block, patch = self.settings, self.labels, self.split, self.block, self.settings["patch"]
        data, windows = self.split_patches(None)
        for name in ("train", "val"):
            if not (data[name][1] != labelling.UNLABELLED).any():
                raise BadInputError(f"the {name} blocks hold no labelled pixels; label more of the area or use a "
                                    "smaller --block")
        fold_ids = _block_folds(split, labels, s["folds"], block=block, patch=patch, seed=s["seed"]) \
            if s["folds"] > 1 else None
        def fit(values: dict) -> tuple[nn.Module, dict, Architecture]:
            model_kwargs, train_kwargs = split_values(values)
            arch = _architecture(s["model"], len(self.bands), len(self.class_names), s["width"], model_kwargs)
            return (*_fit_segmenter(arch, data["train"], data["val"], epochs=s["epochs"], batch_size=s["batch_size"],
                                    seed=s["seed"], train_kwargs=train_kwargs), arch)

        def validation_f1(values: dict) -> float:
            proba, y = training.flatten_labelled(predict_proba(fit(values)[0], data["val"][0]), data["val"][1])
            return classification_metrics(y, proba.argmax(1), proba)["macro_f1"]

        values, tuning = tuned(validation_f1, SEARCH, trials=s["tune"], seed=s["seed"], metric="validation macro F1")
        model, history, arch = fit(values)
        metrics, baselines, calibration = _test_metrics(
            model, data, self.class_names, s["seed"], self.run_dir, calibrate=s["calibrate"],
            mc_samples=s["mc_samples"], scenes=_test_scenes(self.ds, self.scenes_uri, windows["test"],
                                                            data["test"][1], patch))
        cv = None
        if fold_ids is not None:
            cv = _cross_validate(self.ds, labels, split, fold_ids, windows["val"], self.class_names, arch,
                                 block=block, patch=patch, epochs=s["epochs"], batch_size=s["batch_size"],
                                 seed=s["seed"])
            metrics["cv"] = cv.pop("summary")
        reference = _sample_pixels(self.ds, s["seed"], region=split == grid.SPLITS["train"])
        buf = io.BytesIO()
        reference.to_parquet(buf, index=False)
        area = self.ds.attrs["area"]
        card = ModelCard(
            architecture=arch, bands=self.bands, tuning=tuning,
            class_names=self.class_names, metrics=metrics, calibration=calibration, history=history,
            normalization={k: self.stats[k] for k in ("mean", "std", "low", "high")},
            parameters={key: s[key] for key in ("epochs", "patch", "seed", "batch_size")} | {"block": block},
            data={"area": area, "train_patches": len(data["train"][0]),
                  "fingerprint": _fingerprint(area, self.stats, labels, split)})
        return Fitted(model, card, extra_files={"reference.parquet": buf.getvalue()},
                      outputs={"baselines": baselines, "cv": cv, "test": data["test"]})


@task(name="train or load the classifier", **CACHED)
def train_classifier(mosaic_uri: str, norm_uri: str, run_dir: str, models_root: str, *, mode: str = "auto",
                     model_name: str | None = None, model: str = "unet", epochs: int = 30,
                     patch: int = training.PATCH, width: int = 32,
                     batch_size: int = 16, seed: int = 0, calibrate: str | None = None,
                     mc_samples: int = 0, folds: int = 0, tune: int = 0, scenes_uri: str | None = None) -> dict:
    """The one model lifecycle (models/lifecycle.py) over the blocks of the spatial split: a challenger trained
    on the training blocks or the champion, compared on validation blocks the champion never saw; the model that
    scores and the per-pixel baseline on the same test pixels, which that model never saw.

    ``folds`` > 1 adds blocked spatial cross-validation over the training blocks; ``scenes_uri`` (the scene
    profile) gives the scene footprints for metrics per scene."""
    ds = open_zarr(mosaic_uri)
    stats = read_json(norm_uri)
    name = model_name or f"satellite-{ds.attrs['area']}"
    image, labels, split = _load_arrays(ds, stats)
    labelled = bool((labels != labelling.UNLABELLED).any())
    settings = {"model": model, "epochs": epochs, "patch": patch, "width": width, "batch_size": batch_size,
                "seed": seed, "calibrate": calibrate, "mc_samples": mc_samples, "folds": folds, "tune": tune}
    spec = SatelliteSpec(ds, stats, image, labels, split, settings=settings, run_dir=run_dir, scenes_uri=scenes_uri)
    registry = ModelRegistry(models_root)
    keys = spec.keys()
    champion = registry.champion(name)
    reusable = champion is not None and spec.compatible(champion)
    if not labelled and mode != "never" and (mode == "always" or not reusable):
        raise BadInputError("no labelled pixels to train on; pass --labels (polygons or a label raster) "
                            "or --train never to score with the champion model")
    decision = run_lifecycle(spec, registry, name, mode=mode if labelled else "never", keys=keys,
                             split=spec.block_split.ravel(),
                             no_champion=f"no champion model {name!r} for bands {spec.bands} yet; run once with "
                                         "labels and --train auto")
    if decision.fitted is not None:
        outputs = decision.fitted.outputs
        metrics, baselines = dict(decision.trained.metrics), outputs["baselines"]
        _explain(decision.fitted.model, outputs["test"], spec.bands, run_dir, seed=seed)
    else:
        metrics, baselines = _champion_metrics(spec, decision, registry, keys, mc_samples=mc_samples)
    cv = decision.fitted.outputs["cv"] if decision.fitted is not None else None
    return write_result(decision, SatelliteFiles(run_dir).training, metrics=metrics, baselines=baselines,
                        **({"cv": cv} if cv is not None else {}))


def _champion_metrics(spec: SatelliteSpec, decision: Decision, registry: ModelRegistry, keys: np.ndarray, *,
                      mc_samples: int) -> tuple[dict, dict]:
    """The champion and the pixel baseline on the labelled test blocks the champion never saw (no metrics on
    unlabelled input or other classes)."""
    card = decision.scoring
    if not (spec.labels != labelling.UNLABELLED).any() or spec.class_names != card.class_names:
        return {}, {}
    units = honest_test(decision, registry, keys, np.flatnonzero(spec.block_split.ravel() == grid.SPLITS["test"]))
    if len(units) == 0:
        return {"note": NO_HONEST_TEST}, {}
    data, windows = spec.split_patches(card, test=units)
    metrics, baselines, _ = _test_metrics(decision.model, data, card.class_names, spec.settings["seed"],
                                          spec.run_dir, mc_samples=mc_samples,
                                          scenes=_test_scenes(spec.ds, spec.scenes_uri, windows["test"],
                                                              data["test"][1], spec.settings["patch"]))
    return ({**metrics, "test_blocks": int(len(units))} if metrics else metrics), baselines


def _fingerprint(area: str, stats: dict, labels: np.ndarray, split: np.ndarray) -> str:
    """What the model was trained on: the grid, the training-area statistics and the labels per split."""
    digest = hashlib.sha256(f"{area}|{stats['mean']}|{stats['std']}".encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    digest.update(np.ascontiguousarray(split).tobytes())
    return digest.hexdigest()[:16]


def _champion_image(ds: xr.Dataset, card: ModelCard, image, stats: dict):
    """The mosaic normalized (lazily) with the champion's own training statistics."""
    if all(card.normalization.get(k) == stats[k] for k in ("mean", "std", "low", "high")):
        return image
    return _normalized(ds, card.normalization).data


def _pixel_outputs(model: nn.Module, x: np.ndarray, y: np.ndarray, mc_samples: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per labelled pixel: (proba, class, MC-dropout uncertainty or None) from patch outputs."""
    if mc_samples and mc_samples > 1:
        mean, entropy = predict_proba_mc(model, x, samples=mc_samples, seed=seed, batch_size=32)
        proba, labels = training.flatten_labelled(mean, y)
        return proba, labels, entropy.reshape(-1)[y.reshape(-1) != labelling.UNLABELLED]
    proba, labels = training.flatten_labelled(predict_proba(model, x), y)
    return proba, labels, None


def _test_metrics(model: nn.Module, data: dict, class_names: list[str], seed: int, run_dir: str, *,
                  calibrate: str | None = None, mc_samples: int = 0,
                  scenes: tuple[list[str], np.ndarray] | None = None) -> tuple[dict, dict, dict | None]:
    """The model (calibrated on the validation blocks if asked) and the per-pixel baseline on exactly the same
    labelled test pixels; writes the evaluation table. With ``scenes`` (names, pixel-by-scene membership),
    metrics per scene over all test pixels, and each sampled pixel's scenes in the table."""
    x_test, y_test = data["test"]
    if not (y_test != labelling.UNLABELLED).any():
        return {}, {}, None
    proba, y, uncertainty = _pixel_outputs(model, x_test, y_test, mc_samples, seed)
    val_proba, val_y, _ = _pixel_outputs(model, *data["val"], mc_samples, seed)
    metrics, evaluation, calibration = insight.analyse_predictions(
        val_y, val_proba, y, proba, class_names, calibrate=calibrate, uncertainty=uncertainty)
    sample = evaluation.sample(min(len(evaluation), 50_000), random_state=0)
    if scenes is not None:
        names, member = np.asarray(scenes[0], dtype=object), scenes[1]
        pixel, scene = np.nonzero(member)
        table = insight.slice_metrics(y[pixel], evaluation["y_pred"].to_numpy()[pixel], names[scene])
        per_scene = {row.pop("slice"): row for row in table.to_dict("records")}
        metrics["per_scene"] = {str(n): per_scene.get(n, {"count": 0, "accuracy": None, "macro_f1": None})
                                for n in names}
        sample["scene"] = [names[member[i]].tolist() for i in sample.index]
    write_parquet(sample, SatelliteFiles(run_dir).evaluation)
    x_train, y_train = data["train"]
    keep = y_train.reshape(-1) != labelling.UNLABELLED
    xt = x_train.transpose(0, 2, 3, 1).reshape(-1, x_train.shape[1])[keep]
    yt = y_train.reshape(-1)[keep]
    pick = np.random.default_rng(seed).permutation(len(yt))[:20_000]
    baseline = training.fit_pixel_baseline(xt[pick], yt[pick], seed=seed)
    xs = x_test.transpose(0, 2, 3, 1).reshape(-1, x_test.shape[1])[y_test.reshape(-1) != labelling.UNLABELLED]
    bp = training.baseline_proba(baseline, xs, len(class_names))
    baselines = {"pixel_logreg": classification_metrics(y, bp.argmax(1), bp, class_names=class_names)}
    return metrics, baselines, calibration


def _explain(model: nn.Module, test: tuple, bands: list[str], run_dir: str, *, seed: int, n: int = 6) -> None:
    """Grad-CAM of the last feature convolution for the centre pixel of a few labelled test chips, and the
    penultimate-layer embeddings of test pixels."""
    x, y = test
    centre = x.shape[-1] // 2
    chips = np.flatnonzero(y[:, centre, centre] != labelling.UNLABELLED)
    if not len(chips):
        return
    pick = np.random.default_rng(seed).permutation(chips)[:n]
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(x[pick])).argmax(1)[:, centre, centre].numpy()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    cam = insight.grad_cam(lambda t: model(t)[:, :, centre, centre], convs[-2], torch.as_tensor(x[pick]), pred)
    rgb = [bands.index(b) for b in ("B04", "B03", "B02") if b in bands] or list(range(min(3, len(bands))))
    buf = io.BytesIO()
    np.savez_compressed(buf, chips=x[pick][:, (rgb * 3)[:3]], cam=cam, y_true=y[pick, centre, centre],
                        y_pred=pred)
    files = SatelliteFiles(run_dir)
    write_bytes(buf.getvalue(), files.explanation_chips)
    features = insight.penultimate_features(model, x[chips[:64]], batch_size=16)
    labels = y[chips[:64]]
    keep = labels.reshape(-1) != labelling.UNLABELLED
    flat = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1])[keep]
    with torch.no_grad():
        pixel_pred = model(torch.as_tensor(x[chips[:64]])).argmax(1).numpy().reshape(-1)[keep]
    table = insight.embeddings_table(flat, labels.reshape(-1)[keep], pixel_pred, seed=seed)
    write_parquet(table, files.embeddings)


def _sample_pixels(ds: xr.Dataset, seed: int, *, region: np.ndarray | None = None, n: int = 5000) -> pd.DataFrame:
    """Reflectance of up to ``n`` random valid pixels (inside ``region`` if given), read point by point."""
    shape = ds.sizes["y"], ds.sizes["x"]
    if region is not None:
        rows, cols = np.nonzero(region)
    else:
        rows, cols = np.unravel_index(np.arange(shape[0] * shape[1]), shape)
    pick = np.random.default_rng(seed).permutation(rows.size)[: 4 * n]
    points = ds["reflectance"].isel(y=xr.DataArray(rows[pick], dims="p"), x=xr.DataArray(cols[pick], dims="p"))
    values = points.transpose("p", "band").values
    values = values[np.isfinite(values).all(axis=1)][:n]
    return pd.DataFrame(values, columns=json.loads(ds.attrs["bands"]))


@task(name="score the class map", **CACHED)
def score_class_map(mosaic_uri: str, training_uri: str, run_dir: str, models_root: str, *, mc_samples: int = 0,
                    seed: int = 0) -> dict:
    """The class map and its confidence over the whole mosaic, as COGs aligned with it; with ``mc_samples`` > 1,
    from the mean of that many Monte Carlo dropout passes (seeded per chunk), plus ``uncertainty.tif`` (their
    predictive entropy) and its summary."""
    ds = open_zarr(mosaic_uri)
    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["scored_with"])
    model = registry.load(info["name"], info["scored_with"], build(card))
    maps = write_class_maps(_normalized(ds, card.normalization), model, run_dir, ds.attrs["crs"],
                            calibration=card.calibration, mc_samples=mc_samples, seed=seed)
    result = {"output": maps["class"], "confidence": maps["confidence"]}
    if "uncertainty" in maps:
        result["uncertainty"] = maps["uncertainty"]
        step, (uncertainty, classes) = _overview([result["uncertainty"], maps["class"]])
        result["uncertainty_summary"] = {**uncertainty_summary(uncertainty, classes, card.class_names),
                                         "samples": mc_samples, "every_nth_pixel": step}
    return result


def _overview(paths: list[str], max_side: int = 2048) -> tuple[int, list[np.ndarray]]:
    """Same-sized rasters read at every n-th pixel, so the longest side is at most ``max_side``."""
    import rasterio

    out = []
    for path in paths:
        with rasterio.open(path) as src:
            step = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
            out.append(src.read(1, out_shape=(-(-src.height // step), -(-src.width // step))))
    return step, out


def _read_raster(path: str) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


@task(name="monitor change and drift", **CACHED)
def monitor_area(mosaic_uri: str, classmap_uri: str, training_uri: str, run_dir: str, data_root: str,
                 run_id: str, *, psi_threshold: float = 0.2, change_threshold: float = 0.05, seed: int = 0) -> dict:
    """Class areas, the change since the previous run of the same area, and band drift vs the training
    reference; ``flagged`` when drift or change pass their thresholds."""
    ds = open_zarr(mosaic_uri)
    area = ds.attrs["area"]
    training_info = read_json(training_uri)
    class_names = training_info["class_names"]
    current = _read_raster(classmap_uri)
    areas = class_areas(current, class_names, pixel_area_m2=float(ds.attrs["resolution"]) ** 2)
    previous = [r for r in list_runs("satellite", out=data_root)
                if r.get("status") == "completed" and r.get("monitor", {}).get("area") == area
                and r.get("run_id") != run_id]
    change = {"previous_run": None, "changed_share": None, "transitions": []}
    files = SatelliteFiles(run_dir)
    if previous:
        last = previous[-1]
        prev_map = join(last["dir"], SatelliteFiles.classmap.name)
        if exists(prev_map):
            with tempfile.TemporaryDirectory() as tmp:
                previous_map = _read_raster(fetch(prev_map, tmp))
            changed, transitions, share = change_between(previous_map, current, class_names)
            change = {"previous_run": last["run_id"], "changed_share": share,
                      "transitions": transitions.head(20).to_dict("records")}
            changed_da = ds["labels"].copy(data=changed.astype("uint8"))
            write_cog(changed_da.rio.write_crs(ds.attrs["crs"]), files.change, nodata=255)
    model = training_info["model"]
    reference = pd.read_parquet(io.BytesIO(ModelRegistry(data_root).file(model["name"], model["scored_with"],
                                                                         "reference.parquet")))
    drift = feature_drift(reference, _sample_pixels(ds, seed + 1), psi_threshold=psi_threshold)
    history = [{"run": r["run_id"], **r["monitor"].get("class_area_ha", {})} for r in previous]
    history.append({"run": run_id, **areas})
    flagged = bool(drift["drifted"].any()) or (change["changed_share"] or 0) > change_threshold
    result = {"area": area, "class_area_ha": areas, "change": change, "history": history,
              "drift": drift.to_dict("records"), "flagged": flagged,
              "thresholds": {"psi": psi_threshold, "changed_share": change_threshold}}
    summary = {k: v for k, v in result.items() if k != "history"}
    return {"output": write_json(result, files.monitor), "flagged": flagged, "summary": summary}

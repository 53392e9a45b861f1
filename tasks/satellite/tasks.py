"""The stages of the satellite pipeline: each reads URIs, calls plain functions, writes atomically and returns a
small frozen record (tasks/results.py and the subclasses here). The classifier's own lifecycle is in
classifier.py."""

from __future__ import annotations

import io
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio, also when the stages that read rasters were cached)
import xarray as xr

from models.architectures import build
from models.lifecycle import run_lifecycle, write_result
from models.registry import ModelRegistry
from tasks.cog import write_cog
from tasks.common import save_quarantine, stage
from tasks.compute import returning_freed_memory
from tasks.errors import BadInputError
from tasks.monitor import feature_drift
from tasks.results import Checked, Ingested, Output, Trained
from tasks.runs import list_runs
from tasks.satellite import grid, sources, training
from tasks.satellite import labels as labelling
from tasks.satellite.change import change_between, class_areas
from tasks.satellite.classifier import (
    SatelliteSpec,
    champion_metrics,
    explain,
    load_arrays,
    normalized,
    sample_pixels,
)
from tasks.satellite.files import SatelliteFiles
from tasks.satellite.scoring import uncertainty_summary, write_class_maps
from tasks.store import (
    exists,
    fetch,
    join,
    open_zarr,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
    write_zarr,
)

RASTER_LABELS = {".tif", ".tiff", ".jp2", ".vrt"}
_DATE = re.compile(r"(20\d{2})[-_]?(\d{2})[-_]?(\d{2})|(?:19|20)\d{2}(\d{3})")


@dataclass(frozen=True, kw_only=True)
class ProfiledScenes(Checked):
    pixels_saturated: int
    pixels_nodata: int
    encoding: dict  # how the scenes' numbers were read (dtype, scale, saturation), for run.json's inputs


@dataclass(frozen=True, kw_only=True)
class Mosaic(Output):
    area: str  # the area id: the grid's CRS, resolution and bounds
    shape: list  # rows, columns
    bands: list
    block: dict  # the spatial split's block size asked and used, and why they differ
    labels_in: int  # label polygons read
    labels_quarantined: int  # label polygons kept out (invalid, outside the scenes)


@dataclass(frozen=True, kw_only=True)
class ClassMap(Output):
    confidence: str
    uncertainty: str | None = None
    uncertainty_summary: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Monitored(Output):
    flagged: bool  # drift or change past its threshold
    summary: dict  # run.json's monitor


@stage("ingest", "ingest scenes")
def ingest_scenes(run_dir: str, *, source: str, input: str | None, labels: str | None, date: str | None,
                  two_zones: bool = False, sentinelhub: dict | None = None, stac: dict | None = None) -> Ingested:
    """Bring scenes to a folder (synthetic, local, Sentinel Hub or STAC) and list their files; for STAC, the items
    read, the days written and each item that could not be read even after its retries (``read["stac"]``)."""
    folder = Path(run_dir) / "input"
    class_names, stac_read = None, None
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
    elif source == "stac":
        from tasks.satellite.stac import fetch_stac_scenes

        if not (stac or {}).get("stac"):
            raise BadInputError("--source stac needs --stac: a STAC API URL, or a catalog.json / collection.json")
        fetched = fetch_stac_scenes(folder, **stac)
        input_path, stac_read = str(folder), {k: fetched[k] for k in ("items", "failed", "days")}
    else:
        raise BadInputError(f"unknown --source {source!r}; choose synthetic, local, sentinelhub or stac")
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
    return Ingested(output=write_json(manifest, files.ingest), read={"stac": stac_read} if stac_read else {})


def _synthetic(folder: Path, date: str | None, two_zones: bool) -> dict:
    from datetime import UTC, datetime

    from tasks.satellite.synthetic import write_synthetic_scenes

    return write_synthetic_scenes(folder, when=date or datetime.now(UTC).date().isoformat(), two_zones=two_zones)


@stage("profile", "profile scenes")
def profile_scene_files(ingest_uri: str, run_dir: str, *, scale: float | None = None) -> ProfiledScenes:
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
    profile_uri = write_parquet(clean, files.scene_profile)
    return ProfiledScenes(output=profile_uri, profile=profile_uri, records_in=len(clear),
                          records_valid=len(clear) - len(bad), records_quarantined=len(bad),
                          pixels_saturated=int(clean["saturated_pixels"].sum()),
                          pixels_nodata=int(clean["nodata_pixels"].sum()), encoding=_encoding_summary(clean))


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


@stage("mosaic", "mosaic scenes")
def mosaic_scenes(ingest_uri: str, profile_uri: str, run_dir: str, *, resolution: float | None = None,
                  crs: str | None = None, resampling: str = "average", method: str = "first",
                  label_column: str = "class", bands: list[str] | None = None, block: int = 64, seed: int = 0,
                  chunks: int = 1024) -> Mosaic:
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
    return Mosaic(output=uri, area=area, shape=list(geobox.shape.yx), bands=names, block=blocks, **label_counts)


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


@stage("normalize", "normalization statistics")
def normalization_statistics(mosaic_uri: str, run_dir: str) -> Output:
    """Per-band robust statistics over the training split only: the p0.5/p99.5 clip range, then the mean and
    standard deviation of the clipped values."""
    ds = open_zarr(mosaic_uri)
    stats = grid.band_statistics(ds["reflectance"], ds["split"] == grid.SPLITS["train"])
    out = {"bands": json.loads(ds.attrs["bands"]), **{k: v.tolist() for k, v in stats.items()},
           "clip_percentiles": list(grid.CLIP_PERCENTILES), "region": "train split"}
    return Output(output=write_json(out, SatelliteFiles(run_dir).normalization))




@stage("profile_mosaic", "profile mosaic")
def profile_mosaic(mosaic_uri: str, norm_uri: str, run_dir: str) -> Output:
    """A row per band of the model's input: coverage, the share of pixels outside the training area's clip
    range, and the mean, spread and p1/p99 of the normalized values."""
    ds = open_zarr(mosaic_uri)
    stats = read_json(norm_uri)
    norm = normalized(ds, stats)
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
    return Output(output=write_parquet(table, SatelliteFiles(run_dir).mosaic_profile))


@stage("train", "train or load the classifier")
def train_classifier(mosaic_uri: str, norm_uri: str, run_dir: str, models_root: str, *, mode: str = "auto",
                     model_name: str | None = None, model: str = "unet", epochs: int = 30,
                     patch: int = training.PATCH, width: int = 32,
                     batch_size: int = 16, seed: int = 0, calibrate: str | None = None,
                     mc_samples: int = 0, folds: int = 0, tune: int = 0, scenes_uri: str | None = None) -> Trained:
    """The one model lifecycle (models/lifecycle.py) over the blocks of the spatial split: a challenger trained
    on the training blocks or the champion, compared on validation blocks the champion never saw; the model that
    scores and the per-pixel baseline on the same test pixels, which that model never saw.

    ``folds`` > 1 adds blocked spatial cross-validation over the training blocks; ``scenes_uri`` (the scene
    profile) gives the scene footprints for metrics per scene."""
    ds = open_zarr(mosaic_uri)
    stats = read_json(norm_uri)
    name = model_name or f"satellite-{ds.attrs['area']}"
    image, labels, split = load_arrays(ds, stats)
    labelled = bool((labels != labelling.UNLABELLED).any())
    settings = {"model": model, "epochs": epochs, "patch": patch, "width": width, "batch_size": batch_size,
                "seed": seed, "calibrate": calibrate, "mc_samples": mc_samples, "folds": folds, "tune": tune}
    spec = SatelliteSpec(ds, stats, image, labels, split, settings=settings, run_dir=run_dir, scenes_uri=scenes_uri)
    registry = ModelRegistry(models_root)
    keys = spec.keys()
    champion = registry.champion(name)
    reusable = champion is not None and spec.mismatch(champion) is None
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
        explain(decision.fitted.model, outputs["test"], spec.bands, run_dir, seed=seed)
    else:
        metrics, baselines = champion_metrics(spec, decision, registry, keys, mc_samples=mc_samples)
    cv = decision.fitted.outputs["cv"] if decision.fitted is not None else None
    return write_result(decision, SatelliteFiles(run_dir).training, metrics=metrics, baselines=baselines,
                        **({"cv": cv} if cv is not None else {}))


@stage("score", "score the class map")
def score_class_map(mosaic_uri: str, training_uri: str, run_dir: str, models_root: str, *, mc_samples: int = 0,
                    seed: int = 0) -> ClassMap:
    """The class map and its confidence over the whole mosaic, as COGs aligned with it; with ``mc_samples`` > 1,
    from the mean of that many Monte Carlo dropout passes (seeded per chunk), plus ``uncertainty.tif`` (their
    predictive entropy) and its summary."""
    ds = open_zarr(mosaic_uri)
    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["scored_with"])
    model = registry.load(info["name"], info["scored_with"], build(card))
    maps = write_class_maps(normalized(ds, card.normalization), model, run_dir, ds.attrs["crs"],
                            calibration=card.calibration, mc_samples=mc_samples, seed=seed)
    if "uncertainty" not in maps:
        return ClassMap(output=maps["class"], confidence=maps["confidence"])
    step, (uncertainty, classes) = _overview([maps["uncertainty"], maps["class"]])
    return ClassMap(output=maps["class"], confidence=maps["confidence"], uncertainty=maps["uncertainty"],
                    uncertainty_summary={**uncertainty_summary(uncertainty, classes, card.class_names),
                                         "samples": mc_samples, "every_nth_pixel": step})


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


@stage("monitor", "monitor change and drift")
def monitor_area(mosaic_uri: str, classmap_uri: str, training_uri: str, run_dir: str, data_root: str,
                 models_root: str, run_id: str, *, psi_threshold: float = 0.2, change_threshold: float = 0.05,
                 seed: int = 0) -> Monitored:
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
    reference = pd.read_parquet(io.BytesIO(ModelRegistry(models_root).file(model["name"], model["scored_with"],
                                                                         "reference.parquet")))
    drift = feature_drift(reference, sample_pixels(ds, seed + 1), psi_threshold=psi_threshold)
    history = [{"run": r["run_id"], **r["monitor"].get("class_area_ha", {})} for r in previous]
    history.append({"run": run_id, **areas})
    flagged = bool(drift["drifted"].any()) or (change["changed_share"] or 0) > change_threshold
    result = {"area": area, "class_area_ha": areas, "change": change, "history": history,
              "drift": drift.to_dict("records"), "flagged": flagged,
              "thresholds": {"psi": psi_threshold, "changed_share": change_threshold}}
    summary = {k: v for k, v in result.items() if k != "history"}
    return Monitored(output=write_json(result, files.monitor), flagged=flagged, summary=summary)

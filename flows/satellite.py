"""Satellite monitoring: scenes in, a gated mosaic, a CNN class map, change and drift out."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, pipeline_run
from tasks.errors import MonitoringAlert
from tasks.satellite.report import publish_report
from tasks.satellite.tasks import (
    ingest_scenes,
    monitor_area,
    mosaic_scenes,
    normalization_statistics,
    profile_mosaic,
    profile_scene_files,
    score_class_map,
    train_classifier,
)
from tasks.store import data_root


@flow(name="satellite")
def satellite(source: str = "synthetic", input: str | None = None, labels: str | None = None,
              label_column: str = "class", date: str | None = None, bbox: list[float] | None = None,
              time_from: str | None = None, time_to: str | None = None, resolution: float | None = None,
              crs: str | None = None, bands: list[str] | None = None, scale: float | None = None,
              mosaic_method: str = "first", mosaicking_order: str = "leastCC",
              resampling: str = "average", train: str = "auto", model_name: str | None = None, model: str = "unet",
              epochs: int = 30,
              folds: int = 0, block: int = 64, seed: int = 0, two_zones: bool = False, psi_threshold: float = 0.2,
              change_threshold: float = 0.05, fail_on_drift: bool = False, calibrate: str | None = None,
              mc_samples: int = 0, tune: int = 0, out: str | None = None,
              dask_address: str | None = None, run_id: str | None = None) -> dict:
    """Ingest, gate, mosaic, gate, train or load the champion, score, monitor, publish."""
    parameters = dict(locals())
    with pipeline_run("satellite", parameters, publish=publish_report, out=out, run_id=run_id,
                      dask_address=dask_address) as run:
        run_dir, root = str(run.dir), str(data_root(out))
        sentinelhub = {"bbox": tuple(bbox) if bbox else None, "time_from": time_from, "time_to": time_to,
                       "resolution": resolution or 10.0, "mosaicking_order": mosaicking_order}
        ingest = run.stage("ingest", ingest_scenes, run_dir, source=source, input=input, labels=labels,
                           date=date, two_zones=two_zones,
                           sentinelhub=sentinelhub if source == "sentinelhub" else None)
        profile = run.stage("profile", profile_scene_files, ingest["output"], run_dir, scale=scale)
        run.add_counts(profile["records_in"], profile["records_valid"], profile["records_quarantined"])
        run.inputs.update(profile["encoding"])
        gate(run, profile["output"], "satellite_scenes", "scenes")
        mosaic = run.stage("mosaic", mosaic_scenes, ingest["output"], profile["output"], run_dir,
                           resolution=resolution, crs=crs, resampling=resampling, method=mosaic_method,
                           label_column=label_column, bands=bands, block=block, seed=seed)
        run.add_counts(profile["records_in"] + mosaic["labels_in"],
                       profile["records_valid"] + mosaic["labels_in"] - mosaic["labels_quarantined"],
                       profile["records_quarantined"] + mosaic["labels_quarantined"],
                       scenes_in=profile["records_in"], label_polygons_in=mosaic["labels_in"],
                       pixels_saturated=profile["pixels_saturated"], pixels_nodata=profile["pixels_nodata"])
        run.inputs["spatial_blocks"] = mosaic["block"]
        norm = run.stage("normalize", normalization_statistics, mosaic["output"], run_dir)
        mosaic_profile = run.stage("profile_mosaic", profile_mosaic, mosaic["output"], norm["output"], run_dir)
        gate(run, mosaic_profile["output"], "satellite_mosaic", "mosaic")
        trained = run.stage("train", train_classifier, mosaic["output"], norm["output"], run_dir, root,
                            mode=train, model_name=model_name, model=model, epochs=epochs, seed=seed,
                            calibrate=calibrate,
                            mc_samples=mc_samples, folds=folds, tune=tune, scenes_uri=profile["output"])
        run.model, run.metrics, run.baselines = trained["model"], trained["metrics"], trained["baselines"]
        scored = run.stage("score", score_class_map, mosaic["output"], trained["output"], run_dir, root,
                           mc_samples=mc_samples, seed=seed)
        if "uncertainty_summary" in scored:
            run.metrics = {**run.metrics, "uncertainty_map": scored["uncertainty_summary"]}
        monitored = run.stage("monitor", monitor_area, mosaic["output"], scored["output"], trained["output"],
                              run_dir, root, run.run_id, psi_threshold=psi_threshold,
                              change_threshold=change_threshold, seed=seed)
        run.monitor = monitored["summary"]
        if fail_on_drift and monitored["flagged"]:
            raise MonitoringAlert(f"monitoring flagged area {run.monitor['area']}: drift or change past its "
                                  f"threshold (see {run_dir}/report.html); raise --psi-threshold or "
                                  "--change-threshold if this change is expected")
    return run.to_dict()

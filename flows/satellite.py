"""Satellite monitoring: scenes in, a gated mosaic, a CNN class map, change and drift out."""

from __future__ import annotations

from prefect import flow

from flows.common import gate, models_for, pipeline_run
from flows.params import SatelliteParams
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
def satellite(params: SatelliteParams = SatelliteParams()) -> dict:
    """Ingest, gate, mosaic, gate, train or load the champion, score, monitor, publish."""
    with pipeline_run("satellite", params, publish=publish_report) as run:
        run_dir, models = str(run.dir), models_for(params, run)
        area = {"bbox": tuple(params.bbox) if params.bbox else None, "time_from": params.time_from,
                "time_to": params.time_to}
        sentinelhub = {**area, "resolution": params.resolution or 10.0, "mosaicking_order": params.mosaicking_order}
        stac = {**area, "stac": params.stac, "collection": params.collection, "max_cloud": params.max_cloud,
                "bands": params.bands, "resolution": params.resolution}
        ingest = ingest_scenes(run_dir, source=params.source, input=params.input,
                               labels=params.labels, date=params.date, two_zones=params.two_zones,
                               sentinelhub=sentinelhub if params.source == "sentinelhub" else None,
                               stac=stac if params.source == "stac" else None)
        run.inputs.update(ingest.read)
        profile = profile_scene_files(ingest.output, run_dir, scale=params.scale)
        run.add_counts(profile.records_in, profile.records_valid, profile.records_quarantined)
        run.inputs.update(profile.encoding)
        gate(run, profile.output, "satellite_scenes", "scenes")
        mosaic = mosaic_scenes(ingest.output, profile.output, run_dir,
                               resolution=params.resolution, crs=params.crs, resampling=params.resampling,
                               method=params.mosaic_method, label_column=params.label_column, bands=params.bands,
                               block=params.block, seed=params.seed)
        run.add_counts(profile.records_in + mosaic.labels_in,
                       profile.records_valid + mosaic.labels_in - mosaic.labels_quarantined,
                       profile.records_quarantined + mosaic.labels_quarantined,
                       scenes_in=profile.records_in, label_polygons_in=mosaic.labels_in,
                       pixels_saturated=profile.pixels_saturated, pixels_nodata=profile.pixels_nodata)
        run.inputs["spatial_blocks"] = mosaic.block
        norm = normalization_statistics(mosaic.output, run_dir)
        mosaic_profile = profile_mosaic(mosaic.output, norm.output, run_dir)
        gate(run, mosaic_profile.output, "satellite_mosaic", "mosaic")
        trained = train_classifier(mosaic.output, norm.output, run_dir, models.root,
                                   mode=models.mode, model_name=models.name, model=params.model,
                                   epochs=params.epochs, seed=params.seed, calibrate=params.calibrate,
                                   mc_samples=params.mc_samples, folds=params.folds, tune=params.tune,
                                   scenes_uri=profile.output)
        run.record_training(trained)
        scored = score_class_map(mosaic.output, trained.output, run_dir, models.root,
                                 mc_samples=params.mc_samples, seed=params.seed)
        if scored.uncertainty_summary:
            run.metrics = {**run.metrics, "uncertainty_map": scored.uncertainty_summary}
        monitored = monitor_area(mosaic.output, scored.output, trained.output, run_dir, str(data_root(params.out)),
                                 models.root, run.run_id, psi_threshold=params.psi_threshold,
                                 change_threshold=params.change_threshold, seed=params.seed)
        run.monitor = monitored.summary
        if params.fail_on_drift and monitored.flagged:
            raise MonitoringAlert(f"monitoring flagged area {run.monitor['area']}: drift or change past its "
                                  f"threshold (see {run_dir}/report.html); raise --psi-threshold or "
                                  "--change-threshold if this change is expected")
    return run.to_dict()

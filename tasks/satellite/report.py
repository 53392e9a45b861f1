"""The satellite run's report.html and its Prefect artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks import insight_report
from tasks.figures import plot_bars
from tasks.reporting import Report, classification_section, publish_markdown, publish_run, publish_table, run_report
from tasks.satellite import plots
from tasks.satellite.files import SatelliteFiles
from tasks.store import open_zarr, read_json

SCENE_SLICE = ("scene (test pixels inside each scene's footprint, the extent of its raster; a pixel where scenes "
               "overlap counts for each scene covering it)")


def _rgb(ds) -> np.ndarray:
    bands = [str(b) for b in ds["band"].values]
    wanted = [b for b in ("B04", "B03", "B02") if b in bands] or bands[:3]
    wanted = (wanted * 3)[:3]
    step = max(1, int(np.ceil(max(ds.sizes["y"], ds.sizes["x"]) / 1024)))
    return ds["reflectance"].sel(band=wanted).isel(y=slice(None, None, step), x=slice(None, None, step)).values


def _raster(path: Path) -> np.ndarray | None:
    import rasterio

    if not path.exists():
        return None
    with rasterio.open(path) as src:
        step = max(1, int(np.ceil(max(src.width, src.height) / 1024)))
        return src.read(1, out_shape=(-(-src.height // step), -(-src.width // step)))


def build_report(run: dict) -> Report:
    """Everything a person wants to see about one monitoring run, from the files the run wrote."""
    run_dir = Path(run["dir"])
    report = run_report(run)
    files = SatelliteFiles(run_dir)
    mosaic = files.mosaic
    training = files.training
    class_names = read_json(training)["class_names"] if training.exists() else []
    if mosaic.exists():
        report.heading("Mosaic and class map")
        report.figure("mosaic_rgb", plots.quicklook_rgb(_rgb(open_zarr(mosaic)), title="Mosaic (true colour)"))
        classmap = _raster(files.classmap)
        if classmap is not None:
            report.figure("classmap", plots.quicklook_classes(classmap, class_names, title="Class map"))
        _uncertainty_map(report, run, run_dir, class_names)
    metrics = run.get("metrics") or {}
    classification_section(report, {**run, "metrics": {k: v for k, v in metrics.items() if k != "cv"}},
                                    class_names, heading="Evaluation on the test blocks (split by space)")
    if metrics.get("cv") and training.exists():
        _cross_validation_section(report, metrics["cv"], read_json(training).get("cv") or {})
    evaluation = insight_report.calibration_section(report, run_dir, metrics)
    if evaluation is not None and class_names:
        insight_report.error_section(report, evaluation, class_names, {"scene": SCENE_SLICE})
        empty = [name for name, row in (metrics.get("per_scene") or {}).items() if not row["count"]]
        if empty:
            report.text(f"Scenes with no test pixel inside their footprint (no metrics): {', '.join(empty)}.")
        insight_report.embedding_section(report, run_dir, class_names)
    if files.explanation_chips.exists():
        with np.load(files.explanation_chips) as chips:
            report.heading("Why: Grad-CAM of the last convolution")
            report.figure("grad_cam", insight_report.plot_grad_cam(chips["chips"], chips["cam"], chips["y_true"],
                                                                   chips["y_pred"], class_names),
                          caption="Where the network looked to classify the centre pixel (+) of test chips")
    if files.monitor.exists():
        _monitoring_section(report, read_json(files.monitor), run_dir)
    insight_report.tuning_section(report, run_dir)
    return report


def _uncertainty_map(report: Report, run: dict, run_dir: Path, class_names: list[str]) -> None:
    uncertainty = _raster(SatelliteFiles(run_dir).uncertainty)
    if uncertainty is None:
        return
    summary = (run.get("metrics") or {}).get("uncertainty_map") or {}
    samples = summary.get("samples") or (run.get("parameters") or {}).get("mc_samples")
    report.figure("uncertainty_map", plots.quicklook_uncertainty(
        uncertainty, title=f"Uncertainty: MC dropout, {samples} passes", vmax=np.log(max(len(class_names), 2))),
        caption="Predictive entropy of the mean of the Monte Carlo dropout passes per pixel (0: every pass sure "
                f"of one class; ln {len(class_names)} = {np.log(max(len(class_names), 2)):.2f}: no idea); "
                "the class map and confidence above are from the same mean. Bright areas are where the map needs "
                "a second look or more labels.")
    if summary.get("pixels"):
        step = summary.get("every_nth_pixel", 1)
        report.table([{k: summary[k] for k in ("pixels", "mean", "median", "p95", "max", "max_possible")}],
                     caption="Uncertainty over the whole map (nats" + (f", every n-th pixel, n = {step})"
                                                                      if step > 1 else ")"))
        report.table([{"predicted class": k, "mean uncertainty": v} for k, v in summary["per_class_mean"].items()],
                     caption="Mean uncertainty per predicted class")


def _cross_validation_section(report: Report, cv: dict, detail: dict) -> None:
    """Blocked spatial k-fold: mean, spread and each fold's scores, and which blocks each fold held out."""
    report.heading("Cross-validation (blocked by space)")
    report.text(f"{len(cv['accuracy']['folds'])} folds of whole {detail.get('block', '?')}-pixel blocks of the "
                "training split: each fold is held out in turn while a CNN is trained on the other training blocks "
                "(band statistics from them only, early stopping on the validation blocks) and scored on it. "
                "Patches never cross a block edge, so no training patch reaches into a held-out block. The test "
                "blocks are not used.")
    report.table([{"metric": k, "mean": v["mean"], "std": v["std"],
                   "folds": ", ".join(f"{x:.3f}" for x in v["folds"])} for k, v in cv.items()],
                 caption="Cross-validation: mean ± standard deviation over the folds")
    report.figure("cross_validation", insight_report.plot_cross_validation(cv))
    if detail.get("folds"):
        report.table(detail["folds"], caption="Per fold: held-out blocks and labelled pixels")
    if detail.get("block_folds"):
        report.figure("cv_blocks", plots.quicklook_folds(detail["block_folds"], detail["block_splits"],
                                                         folds=len(cv["accuracy"]["folds"])))


def _monitoring_section(report: Report, monitor: dict, run_dir: Path) -> None:
    report.heading("Monitoring" + (" - FLAGGED" if monitor["flagged"] else ""))
    change = monitor["change"]
    if change["previous_run"]:
        report.text(f"Compared with run {change['previous_run']}: {change['changed_share']:.2%} of pixels changed "
                    f"class (threshold {monitor['thresholds']['changed_share']:.0%}).")
        changed = _raster(SatelliteFiles(run_dir).change)
        if changed is not None:
            report.figure("change_map", plots.quicklook_change(changed == 1, title="Changed since the previous run"))
        if change["transitions"]:
            report.table(change["transitions"], caption="Largest class transitions (pixels)")
    else:
        report.text("First run over this area: no previous class map to compare with.")
    history = pd.DataFrame(monitor["history"])
    if len(history) > 1:
        report.figure("class_area_history", plots.class_area_history(history))
    report.table([{"class": k, "hectares": v} for k, v in monitor["class_area_ha"].items()], caption="Class areas")
    drift = pd.DataFrame(monitor["drift"])
    if not drift.empty:
        report.figure("drift_psi", plot_bars(dict(zip(drift["feature"], drift["psi"], strict=True)),
                                                      title="Band drift vs the training reference (PSI)",
                                                      ylabel="PSI", threshold=monitor["thresholds"]["psi"]))
        report.table(drift, caption="Band drift (PSI, KS)")


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html; publish metrics, drift, a summary and, when flagged, an alert as Prefect artifacts."""
    uri = publish_run(run, build_report(run), metrics_description="Test-block metrics of the model and "
                               "its baseline")
    monitor = run.get("monitor") or {}
    if monitor.get("drift"):
        publish_table("satellite-drift", monitor["drift"], "Band drift against the training reference")
    if monitor.get("flagged"):
        drifted = [d["feature"] for d in monitor.get("drift", []) if d["drifted"]]
        publish_markdown(
            "satellite-alert",
            f"# Area {monitor['area']} flagged\n\n- drifted bands: {', '.join(drifted) or 'none'}\n"
            f"- changed share: {(monitor.get('change') or {}).get('changed_share')}\n- run: {run['run_id']}",
            "Monitoring passed a drift or change threshold")
    return uri

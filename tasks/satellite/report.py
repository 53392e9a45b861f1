"""The satellite run's report.html and its Prefect artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks import evaluate, insight_report
from tasks.satellite import plots
from tasks.store import open_zarr, read_json


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


def build_report(run: dict) -> evaluate.Report:
    """Everything a person wants to see about one monitoring run, from the files the run wrote."""
    run_dir = Path(run["dir"])
    report = evaluate.run_report(run)
    mosaic = run_dir / "mosaic.zarr"
    training = run_dir / "training.json"
    class_names = read_json(training)["class_names"] if training.exists() else []
    if mosaic.exists():
        report.heading("Mosaic and class map")
        report.figure("mosaic_rgb", plots.quicklook_rgb(_rgb(open_zarr(mosaic)), title="Mosaic (true colour)"))
        classmap = _raster(run_dir / "classmap.tif")
        if classmap is not None:
            report.figure("classmap", plots.quicklook_classes(classmap, class_names, title="Class map"))
    evaluate.classification_section(report, run, class_names, heading="Evaluation on the test blocks (split by space)")
    insight_report.insight_sections(report, run, class_names, slices={})
    if (run_dir / "explanations.npz").exists():
        with np.load(run_dir / "explanations.npz") as chips:
            report.heading("Why: Grad-CAM of the last convolution")
            report.figure("grad_cam", insight_report.plot_grad_cam(chips["chips"], chips["cam"], chips["y_true"],
                                                                   chips["y_pred"], class_names),
                          caption="Where the network looked to classify the centre pixel (+) of test chips")
    if (run_dir / "monitor.json").exists():
        _monitoring_section(report, read_json(run_dir / "monitor.json"), run_dir)
    return report


def _monitoring_section(report: evaluate.Report, monitor: dict, run_dir: Path) -> None:
    report.heading("Monitoring" + (" - FLAGGED" if monitor["flagged"] else ""))
    change = monitor["change"]
    if change["previous_run"]:
        report.text(f"Compared with run {change['previous_run']}: {change['changed_share']:.2%} of pixels changed "
                    f"class (threshold {monitor['thresholds']['changed_share']:.0%}).")
        changed = _raster(run_dir / "change.tif")
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
        report.figure("drift_psi", evaluate.plot_bars(dict(zip(drift["feature"], drift["psi"], strict=True)),
                                                      title="Band drift vs the training reference (PSI)",
                                                      ylabel="PSI", threshold=monitor["thresholds"]["psi"]))
        report.table(drift, caption="Band drift (PSI, KS)")


@task(name="publish the report")
def publish_report(run: dict) -> str:
    """Write report.html; publish metrics, drift, a summary and, when flagged, an alert as Prefect artifacts."""
    uri = evaluate.publish_run(run, build_report(run), metrics_description="Test-block metrics of the model and "
                               "its baseline")
    monitor = run.get("monitor") or {}
    if monitor.get("drift"):
        evaluate.publish_table("satellite-drift", monitor["drift"], "Band drift against the training reference")
    if monitor.get("flagged"):
        drifted = [d["feature"] for d in monitor.get("drift", []) if d["drifted"]]
        evaluate.publish_markdown(
            "satellite-alert",
            f"# Area {monitor['area']} flagged\n\n- drifted bands: {', '.join(drifted) or 'none'}\n"
            f"- changed share: {(monitor.get('change') or {}).get('changed_share')}\n- run: {run['run_id']}",
            "Monitoring passed a drift or change threshold")
    return uri

"""The satellite flow end to end under a Prefect test server, and the CLI's exit codes on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from flows.cli import main
from flows.params import SatelliteParams
from flows.satellite import satellite
from tasks.satellite.synthetic import CLASSES, write_synthetic_scenes
from tests.conftest import write_raster

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]
FAST = {"epochs": 2}


def run_json(result: dict) -> dict:
    return json.loads((Path(result["dir"]) / "run.json").read_text())


class TestMonitoringRuns:
    def test_two_runs_train_then_monitor_change(self, data_root: Path) -> None:
        first = run_json(satellite(SatelliteParams(date="2024-04-01", folds=2, mc_samples=3, **FAST)))
        assert first["status"] == "completed" and first["error"] is None
        counts = first["counts"]
        assert counts["records_in"] == counts["records_valid"] + counts["records_quarantined"] == 4
        assert [q["suite"] for q in first["quality"]] == ["satellite_scenes", "satellite_mosaic"]
        assert all(q["success"] for q in first["quality"])
        assert set(first["metrics"]) >= {"accuracy", "macro_f1", "cohen_kappa", "roc_auc", "per_class"}
        assert "pixel_logreg" in first["baselines"]
        assert first["model"]["promoted"] and first["model"]["version"] == "v1"
        assert set(first["stages"]) == {"ingest", "profile", "mosaic", "normalize", "profile_mosaic", "train",
                                        "score", "monitor"}
        run_dir = Path(first["dir"])
        with rasterio.open(run_dir / "classmap.tif") as cog:
            assert cog.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert set(np.unique(cog.read(1))) <= set(range(len(CLASSES))) | {255}
            transform, shape = cog.transform, cog.shape
        import xarray as xr

        mosaic = xr.open_zarr(run_dir / "mosaic.zarr")
        assert shape == (mosaic.sizes["y"], mosaic.sizes["x"])
        assert transform.c == float(mosaic.x[0]) - 5 and transform.f == float(mosaic.y[0]) + 5
        html = (run_dir / "report.html").read_text()
        assert "data:image/png;base64" in html and "Model vs baseline" in html
        for fig in ("mosaic_rgb", "classmap", "confusion_matrix", "roc_pr", "loss", "drift_psi"):
            assert (run_dir / "figures" / f"{fig}.png").exists(), fig
        self.check_cross_validation_scenes_and_uncertainty(first, run_dir)

        second = run_json(satellite(SatelliteParams(date="2024-09-01", **FAST)))
        assert second["status"] == "completed"
        assert second["model"]["trained"] is False and second["model"]["version"] == "v1"
        change = second["monitor"]["change"]
        assert change["previous_run"] == first["run_id"]
        assert change["changed_share"] > 0.01
        assert {"from": "forest", "to": "bare"} in [{k: t[k] for k in ("from", "to")} for t in change["transitions"]]
        assert (Path(second["dir"]) / "change.tif").exists()
        assert (Path(second["dir"]) / "figures" / "change_map.png").exists()
        assert not (Path(second["dir"]) / "uncertainty.tif").exists() and "cv" not in second["metrics"]
        assert set(second["metrics"]["per_scene"]) == {f"S2_T{i}_20240901" for i in range(1, 5)}

    @staticmethod
    def check_cross_validation_scenes_and_uncertainty(record: dict, run_dir: Path) -> None:
        """--folds 2: blocked CV figures with their spread; metrics per scene; --mc-samples 3: the uncertainty map."""
        metrics = record["metrics"]
        assert set(metrics["cv"]) == {"accuracy", "macro_f1", "cohen_kappa"}
        for value in metrics["cv"].values():
            assert len(value["folds"]) == 2 and value["mean"] == pytest.approx(np.mean(value["folds"]))
            assert value["std"] == pytest.approx(np.std(value["folds"]))
        cv = json.loads((run_dir / "training.json").read_text())["cv"]
        folds = np.array(cv["block_folds"])
        assert [f["fold"] for f in cv["folds"]] == [1, 2] and sorted(set(folds.ravel())) == [0, 1, 2]
        assert [f["blocks"] for f in cv["folds"]] == [int((folds == 1).sum()), int((folds == 2).sum())]
        assert (np.array(cv["block_splits"])[folds > 0] == 0).all()  # only training blocks are held out
        scenes = metrics["per_scene"]
        assert set(scenes) == {f"S2_T{i}_20240401" for i in range(1, 5)}
        test_pixels = sum(c["support"] for c in metrics["per_class"].values())
        assert sum(s["count"] for s in scenes.values()) >= test_pixels  # every test pixel is in a scene or more
        with rasterio.open(run_dir / "classmap.tif") as cmap, rasterio.open(run_dir / "uncertainty.tif") as unc:
            assert unc.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert (unc.shape, unc.transform, unc.crs) == (cmap.shape, cmap.transform, cmap.crs)
            classes, uncertainty = cmap.read(1), unc.read(1)
        assert (np.isnan(uncertainty) == (classes == 255)).all()
        assert np.nanmin(uncertainty) >= 0 and np.nanmax(uncertainty) <= np.log(len(CLASSES)) + 1e-6
        summary = metrics["uncertainty_map"]
        assert summary["pixels"] == int((classes != 255).sum()) and summary["samples"] == 3
        assert summary["mean"] == pytest.approx(float(np.nanmean(uncertainty)), rel=1e-5)
        for fig in ("uncertainty_map", "cross_validation", "cv_blocks"):
            assert (run_dir / "figures" / f"{fig}.png").exists(), fig
        html = (run_dir / "report.html").read_text()
        assert "Cross-validation (blocked by space)" in html and "Metrics per scene" in html
        evaluation = pd.read_parquet(run_dir / "evaluation.parquet")
        assert {"scene", "uncertainty"} <= set(evaluation.columns)
        assert set(np.concatenate(evaluation["scene"].to_numpy())) <= set(scenes)

    def test_fail_on_drift_ends_the_run_with_exit_code_3(self, data_root: Path, capsys) -> None:
        assert main(["run", "satellite", "--date", "2024-04-01", "--epochs", "3"]) == 0
        code = main(["run", "satellite", "--date", "2024-10-01", "--fail-on-drift", "--change-threshold", "0.001"])
        assert code == 3
        assert "monitoring flagged area" in capsys.readouterr().err

    def test_retraining_on_the_same_blocks_keeps_the_champion_and_its_class_map(self, data_root: Path) -> None:
        first = run_json(satellite(SatelliteParams(date="2024-04-01", **FAST)))
        again = run_json(satellite(SatelliteParams(date="2024-04-01", train="always", **FAST)))
        model = again["model"]
        assert model["trained"] and model["version"] == "v2" and not model["promoted"]
        assert model["comparison"]["units"] == 0 and model["scored_with"] == "v1"
        with rasterio.open(Path(first["dir"]) / "classmap.tif") as a, rasterio.open(
                Path(again["dir"]) / "classmap.tif") as b:
            assert (a.read(1) == b.read(1)).all()  # the champion's class map, not the losing challenger's


class TestSources:
    def test_tile_in_another_utm_zone(self, data_root: Path) -> None:
        result = run_json(satellite(SatelliteParams(date="2024-06-01", two_zones=True, **FAST)))
        assert result["status"] == "completed"
        assert result["metrics"]["accuracy"] > 0.5

    def test_local_folder_with_polygon_labels_quarantines_those_outside(self, tmp_path: Path, data_root: Path) -> None:
        import geopandas as gpd
        from rasterio import features
        from shapely.geometry import box, shape

        scenes = tmp_path / "scenes"
        out = write_synthetic_scenes(scenes, when="2024-06-01")
        with rasterio.open(out["labels"]) as src:
            values, transform, crs = src.read(1), src.transform, src.crs
        Path(out["labels"]).unlink()
        polygons = features.shapes(values, mask=values > 0, transform=transform)
        shapes = [(shape(g), CLASSES[int(v) - 1]) for g, v in polygons]
        gdf = gpd.GeoDataFrame({"landcover": [c for _, c in shapes]}, geometry=[g for g, _ in shapes], crs=crs)
        far = gpd.GeoDataFrame({"landcover": ["water"]}, geometry=[box(0, 0, 100, 100)], crs=crs)
        labels = tmp_path / "labels.gpkg"
        import pandas as pd

        pd.concat([gdf, far], ignore_index=True).pipe(gpd.GeoDataFrame, crs=crs).to_file(labels)
        result = run_json(satellite(SatelliteParams(source="local", input=str(scenes), labels=str(labels),
                                                    label_column="landcover", **FAST)))
        assert result["status"] == "completed"
        counts = result["counts"]
        assert counts["records_quarantined"] == 1
        assert counts["records_in"] == 4 + len(shapes) + 1
        assert counts["records_in"] == counts["records_valid"] + counts["records_quarantined"]
        quarantine = pd.read_parquet(Path(result["dir"]) / "quarantine.parquet")
        assert quarantine["reason"].tolist() == ["label polygon outside every scene"]
        assert set(result["metrics"]["per_class"]) == set(CLASSES)


class TestBadInput:
    def test_missing_folder_exits_2(self, data_root: Path, capsys) -> None:
        assert main(["run", "satellite", "--source", "local", "--input", "/no/such/folder"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: /no/such/folder: no such folder") and "Traceback" not in err

    def test_run_json_is_written_for_a_failed_run(self, data_root: Path) -> None:
        assert main(["run", "satellite", "--source", "local", "--input", "/no/such/folder", "--run-id", "bad"]) == 2
        record = json.loads((data_root / "satellite" / "runs" / "bad" / "run.json").read_text())
        assert record["status"] == "failed" and "no such folder" in record["error"] and record["exit_code"] == 2
        assert (data_root / "satellite" / "runs" / "bad" / "report.html").exists()

    def test_scenes_entirely_cloud_exit_2(self, tmp_path: Path, data_root: Path, capsys) -> None:
        write_raster(tmp_path / "x_B02.tif", np.full((8, 8), 1000, "uint16"))
        write_raster(tmp_path / "x_SCL.tif", np.full((8, 8), 9, "uint8"))
        assert main(["run", "satellite", "--source", "local", "--input", str(tmp_path)]) == 2
        assert "entirely cloud or nodata (x)" in capsys.readouterr().err

    def test_one_cloudy_scene_is_quarantined(self, tmp_path: Path, data_root: Path) -> None:
        out = write_synthetic_scenes(tmp_path, when="2024-06-01")
        scl = Path(f"{out['scenes'][0]}_SCL.tif")
        with rasterio.open(scl, "r+") as dst:
            dst.write(np.full(dst.shape, 9, "uint8"), 1)
        result = run_json(satellite(SatelliteParams(source="local", input=str(tmp_path), labels=out["labels"], **FAST)))
        assert result["counts"]["records_quarantined"] == 1 and result["counts"]["records_valid"] == 3

    def test_unknown_label_column_exit_2(self, tmp_path: Path, data_root: Path, capsys) -> None:
        import geopandas as gpd
        from shapely.geometry import box

        Path(write_synthetic_scenes(tmp_path / "s", when="2024-06-01")["labels"]).unlink()
        labels = tmp_path / "labels.geojson"
        gpd.GeoDataFrame({"kind": ["forest"]}, geometry=[box(600000, 4998000, 601000, 4999000)],
                         crs="EPSG:32632").to_file(labels)
        code = main(["run", "satellite", "--source", "local", "--input", str(tmp_path / "s"), "--labels", str(labels)])
        assert code == 2
        assert "label column 'class' not found; columns are: kind" in capsys.readouterr().err

    def test_labels_outside_every_scene_exit_2(self, tmp_path: Path, data_root: Path, capsys) -> None:
        import geopandas as gpd
        from shapely.geometry import box

        Path(write_synthetic_scenes(tmp_path / "s", when="2024-06-01")["labels"]).unlink()
        labels = tmp_path / "labels.geojson"
        gpd.GeoDataFrame({"class": ["forest"]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32632").to_file(labels)
        assert main(["run", "satellite", "--source", "local", "--input", str(tmp_path / "s"), "--labels",
                     str(labels)]) == 2
        assert "no label polygon overlaps any scene" in capsys.readouterr().err

    def test_a_saturated_band_fails_the_scenes_gate_with_exit_3(self, tmp_path: Path, data_root: Path,
                                                                 capsys) -> None:
        out = write_synthetic_scenes(tmp_path, when="2024-06-01")
        with rasterio.open(f"{out['scenes'][0]}_B04.tif", "r+") as dst:
            dst.write(np.full(dst.shape, 65535, "uint16"), 1)
        assert main(["run", "satellite", "--source", "local", "--input", str(tmp_path), "--labels",
                     out["labels"]]) == 3
        err = capsys.readouterr().err
        assert "quality gate 'satellite_scenes' failed" in err
        assert "expect_column_values_to_be_between(saturated_fraction)" in err

    def test_a_constant_band_fails_the_mosaic_gate_with_exit_3(self, tmp_path: Path, data_root: Path,
                                                               capsys) -> None:
        out = write_synthetic_scenes(tmp_path, when="2024-06-01")
        for scene in out["scenes"]:
            with rasterio.open(f"{scene}_B08.tif", "r+") as dst:
                dst.write(np.full(dst.shape, 3000, "uint16"), 1)
        assert main(["run", "satellite", "--source", "local", "--input", str(tmp_path), "--labels",
                     out["labels"]]) == 3
        err = capsys.readouterr().err
        assert "quality gate 'satellite_mosaic' failed" in err and "expect_column_values_to_be_between(std)" in err


class TestBadFilesThroughTheCli:
    @pytest.mark.parametrize("fault, message", [
        ("corrupt", "cannot be read as a raster"),
        ("no_crs", "has no CRS"),
        ("mismatched", "bands of one scene must cover the same extent"),
    ])
    def test_exit_2_with_one_line_naming_the_file(self, fault, message, tmp_path: Path, data_root: Path,
                                                  capsys) -> None:
        band = np.full((16, 16), 1200, "uint16")
        write_raster(tmp_path / "x_B03.tif", band)
        if fault == "corrupt":
            (tmp_path / "x_B02.tif").write_bytes(b"II*\x00" + b"\x00" * 64)
        elif fault == "no_crs":
            write_raster(tmp_path / "x_B02.tif", band, crs=None)
        else:
            write_raster(tmp_path / "x_B02.tif", band, origin=(601_000.0, 5_000_000.0))
        assert main(["run", "satellite", "--source", "local", "--input", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "x_B0" in err[0] and message in err[0]

"""Finding, checking and profiling scene files; every bad input gives one line naming the file and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.errors import BadInputError
from tasks.satellite import sources
from tests.conftest import write_raster


def band(value: int = 1000, shape=(8, 8)) -> np.ndarray:
    return np.full(shape, value, dtype="uint16")


class TestFindScenes:
    def test_groups_band_files_by_the_rest_of_the_name(self, tmp_path: Path) -> None:
        for stem in ("S2_T1_20240601", "S2_T2_20240601"):
            for b in ("B02", "B8A"):
                write_raster(tmp_path / f"{stem}_{b}.tif", band())
            write_raster(tmp_path / f"{stem}_SCL.tif", band(4).astype("uint8"))
        scenes = {s.scene: s for s in sources.find_scenes(str(tmp_path))}
        assert set(scenes) == {"S2_T1_20240601", "S2_T2_20240601"}
        assert set(scenes["S2_T1_20240601"].bands) == {"B02", "B8A"}
        assert scenes["S2_T1_20240601"].mask_kind == "SCL"

    def test_landsat_style_lowercase_bands_and_fmask(self, tmp_path: Path) -> None:
        for b in ("b3", "b4", "fmask"):
            write_raster(tmp_path / f"LE70350322008118EDC00_{b}.tif", band().astype("int16"), nodata=-9999)
        (scene,) = sources.find_scenes(str(tmp_path / "*.tif"))
        assert set(scene.bands) == {"B3", "B4"} and scene.mask_kind == "FMASK"

    def test_multiband_file_takes_band_names_from_descriptions(self, tmp_path: Path) -> None:
        write_raster(tmp_path / "scene.tif", np.stack([band(), band()]), descriptions=["B04", "B08"])
        (scene,) = sources.find_scenes(str(tmp_path))
        assert scene.bands == {"B04": (str(tmp_path / "scene.tif"), 1), "B08": (str(tmp_path / "scene.tif"), 2)}

    def test_numbered_single_band_files_on_one_grid_are_one_scene(self, tmp_path: Path) -> None:
        for n in ("10", "20", "70"):
            write_raster(tmp_path / f"lsat7_2000_{n}.tif", band())
        write_raster(tmp_path / "tile_1.tif", band())
        write_raster(tmp_path / "tile_2.tif", band(), origin=(700_000.0, 5_000_000.0))
        scenes = {s.scene: set(s.bands) for s in sources.find_scenes(str(tmp_path))}
        assert scenes == {"lsat7_2000": {"B10", "B20", "B70"}, "tile_1": {"B1"}, "tile_2": {"B1"}}

    def test_table_round_trip(self, tmp_path: Path) -> None:
        import pandas as pd

        for b in ("B02", "B03", "SCL"):
            write_raster(tmp_path / f"x_{b}.tif", band())
        scenes = sources.find_scenes(str(tmp_path))
        again = sources.scenes_from_table(pd.DataFrame([r for s in scenes for r in s.rows()]))
        assert again == scenes

    def test_missing_folder(self, tmp_path: Path) -> None:
        with pytest.raises(BadInputError, match="no such folder"):
            sources.find_scenes(str(tmp_path / "nowhere"))

    def test_a_table_is_not_a_scene(self, tmp_path: Path) -> None:
        (tmp_path / "patches.csv").write_text("b1,b2,class\n1,2,soil\n")
        with pytest.raises(BadInputError, match=r"patches\.csv: a \.csv file, not a GeoTIFF/JP2 raster"):
            sources.find_scenes(str(tmp_path / "patches.csv"))

    def test_folder_without_rasters(self, tmp_path: Path) -> None:
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(BadInputError, match="no GeoTIFF or JP2"):
            sources.find_scenes(str(tmp_path))


class TestBadFiles:
    def test_corrupt_raster_names_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "x_B02.tif"
        path.write_bytes(b"this is not a tiff" * 10)
        with pytest.raises(BadInputError, match=r"x_B02\.tif: cannot be read as a raster.*re-download"):
            sources.profile_scenes(sources.find_scenes(str(tmp_path)))

    def test_truncated_raster_names_the_file(self, tmp_path: Path) -> None:
        noise = np.random.default_rng(0).integers(1, 9999, (256, 256)).astype("uint16")
        path = write_raster(tmp_path / "x_B02.tif", noise)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(BadInputError, match=r"x_B02\.tif: .*(corrupt or truncated|cannot be read)"):
            sources.profile_scenes(sources.find_scenes(str(tmp_path)))

    def test_file_without_crs(self, tmp_path: Path) -> None:
        write_raster(tmp_path / "x_B02.tif", band(), crs=None)
        with pytest.raises(BadInputError, match=r"x_B02\.tif: has no CRS; assign one, e\.g\. gdal_edit\.py"):
            sources.profile_scenes(sources.find_scenes(str(tmp_path)))

    def test_bands_of_mismatched_extent(self, tmp_path: Path) -> None:
        write_raster(tmp_path / "x_B02.tif", band())
        write_raster(tmp_path / "x_B03.tif", band(), origin=(601_000.0, 5_000_000.0))
        with pytest.raises(BadInputError, match="bands of one scene must cover the same extent"):
            sources.profile_scenes(sources.find_scenes(str(tmp_path)))


class TestProfile:
    def test_fractions_and_reflectance_range(self, tmp_path: Path) -> None:
        data = band(2000)
        data[:2] = 0
        write_raster(tmp_path / "x_B02.tif", data)
        scl = np.full((4, 4), 4, dtype="uint8")
        scl[0] = 0
        scl[1, :2] = 9
        write_raster(tmp_path / "x_SCL.tif", scl, res=20)
        (row,) = sources.profile_scenes(sources.find_scenes(str(tmp_path))).to_dict("records")
        assert row["nodata_fraction"] == pytest.approx(0.25)
        assert row["cloud_fraction"] == pytest.approx(2 / 12)
        assert row["clear_fraction"] == pytest.approx(10 / 16)
        assert row["p1"] == pytest.approx(0.2) and row["p99"] == pytest.approx(0.2)
        assert row["crs"] == "EPSG:32632" and row["resolution"] == row["resolution_m"] == 10

    def test_saturated_pixels_are_counted_and_left_out_of_the_percentiles(self, tmp_path: Path) -> None:
        data = np.tile(np.arange(1000, 3000, 20, dtype="uint16"), (10, 1))  # 0.1 .. 0.298 reflectance
        data[0, :7] = 65535
        data[1, :3] = 0
        write_raster(tmp_path / "x_B02.tif", data, nodata=None)
        (row,) = sources.profile_scenes(sources.find_scenes(str(tmp_path))).to_dict("records")
        assert (row["saturated_pixels"], row["nodata_pixels"]) == (7, 3)
        assert row["saturated_fraction"] == pytest.approx(0.007) and row["saturation"] == 65535
        assert row["valid_fraction"] == pytest.approx(0.99) and row["p99"] < 0.3

    def test_whole_numbers_up_to_255_in_a_wider_type_are_eight_bit(self, tmp_path: Path) -> None:
        dn = np.tile(np.arange(10, 255, dtype="float32"), (4, 1))
        dn[0, 0] = 255
        write_raster(tmp_path / "x_B1.tif", dn, nodata=-99999)
        write_raster(tmp_path / "x_B2.tif", dn.astype("int16"), nodata=-32768)
        rows = sources.profile_scenes(sources.find_scenes(str(tmp_path))).to_dict("records")
        assert [r["scale"] for r in rows] == [pytest.approx(1 / 255)] * 2
        assert [r["saturation"] for r in rows] == [255] * 2
        assert all(r["saturated_pixels"] == 1 and r["p99"] < 1.0 for r in rows)

    def test_reflectance_in_a_float_file_is_kept_as_it_is(self, tmp_path: Path) -> None:
        write_raster(tmp_path / "x_B1.tif", np.full((4, 4), 0.31, "float32"), nodata=None)
        (row,) = sources.profile_scenes(sources.find_scenes(str(tmp_path))).to_dict("records")
        assert row["scale"] == 1.0 and np.isnan(row["saturation"]) and row["p1"] == pytest.approx(0.31)

    def test_degrees_become_metres(self, tmp_path: Path) -> None:
        write_raster(tmp_path / "x_B02.tif", band(), origin=(13.4, 52.5), res=0.0001, crs="EPSG:4326")
        (row,) = sources.profile_scenes(sources.find_scenes(str(tmp_path))).to_dict("records")
        assert row["resolution_m"] == pytest.approx(11.13, abs=0.01)

    def test_open_band_scales_and_masks_nodata(self, tmp_path: Path) -> None:
        data = band(2500)
        data[0, 0] = 0
        da = sources.open_band(str(write_raster(tmp_path / "x_B02.tif", data)))
        values = da.values
        assert np.isnan(values[0, 0]) and values[1, 1] == pytest.approx(0.25)

    def test_open_band_masks_the_saturation_value(self, tmp_path: Path) -> None:
        data = band(2500)
        data[2, 3] = 65535
        values = sources.open_band(str(write_raster(tmp_path / "x_B02.tif", data, nodata=None))).values
        assert np.isnan(values).sum() == 1 and np.isnan(values[2, 3])

    def test_the_mosaic_masks_saturated_pixels_before_resampling(self, tmp_path: Path) -> None:
        from odc.geo.geobox import GeoBox
        from rasterio.transform import from_origin

        data = band(2000, shape=(8, 8))
        data[0, 0] = 65535
        write_raster(tmp_path / "x_B02.tif", data, nodata=None)
        scenes = sources.find_scenes(str(tmp_path))
        coarse = GeoBox((4, 4), from_origin(600_000.0, 5_000_000.0, 20, 20), "EPSG:32632")
        image = sources.read_mosaic(scenes, ["B02"], coarse, resampling="average").values
        assert np.allclose(image, 0.2)  # the saturated pixel is left out of its 2 x 2 average


class TestLabelPolygons:
    def test_unknown_column_lists_the_columns_found(self, tmp_path: Path) -> None:
        import geopandas as gpd
        from shapely.geometry import box

        path = tmp_path / "labels.geojson"
        gpd.GeoDataFrame({"landcover": ["forest"]}, geometry=[box(0, 0, 1, 1)], crs="EPSG:4326").to_file(path)
        with pytest.raises(BadInputError, match=r"label column 'class' not found; columns are: landcover"):
            sources.read_label_polygons(str(path), "class")


class TestBandGeobox:
    @pytest.mark.parametrize("crs, res", [("EPSG:32632", 10.0), ("EPSG:32633", 20.0), ("EPSG:4326", 0.001)])
    def test_equals_the_grid_of_the_opened_band(self, tmp_path: Path, crs: str, res: float) -> None:
        origin = (13.4, 52.5) if crs == "EPSG:4326" else (600_000.0, 5_000_000.0)
        path = write_raster(tmp_path / "s_B04.tif", band(shape=(7, 9)), origin=origin, res=res, crs=crs)
        box = sources.band_geobox(str(path))
        assert box == sources.open_band(str(path)).odc.geobox
        assert box.shape.yx == (7, 9)

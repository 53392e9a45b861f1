"""Resampling, mosaicking, the spatial split and normalization, on tiny in-memory rasters."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr

from tasks.satellite import grid


def raster(values: np.ndarray, *, x0: float = 0.0, y0: float = 40.0, res: float = 10.0, crs: str = "EPSG:32632"):
    gb = GeoBox(values.shape, Affine(res, 0, x0, 0, -res, y0), crs)
    return wrap_xr(values.astype("float32"), gb, nodata=np.nan)


class TestResample:
    def test_20m_band_onto_10m_grid_repeats_each_pixel(self) -> None:
        coarse = raster(np.arange(4).reshape(2, 2), res=20)
        fine = grid.GeoBox((4, 4), Affine(10, 0, 0, 0, -10, 40), "EPSG:32632")
        out = grid.resample_to_grid(coarse, fine).values
        np.testing.assert_array_equal(out, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])

    def test_10m_band_onto_20m_grid_averages(self) -> None:
        fine = raster(np.arange(16).reshape(4, 4))
        coarse = GeoBox((2, 2), Affine(20, 0, 0, 0, -20, 40), "EPSG:32632")
        out = grid.resample_to_grid(fine, coarse).values
        np.testing.assert_allclose(out, [[2.5, 4.5], [10.5, 12.5]])

    def test_lazy_input_stays_lazy_and_equal(self) -> None:
        band = raster(np.arange(64).reshape(8, 8), res=20)
        target = GeoBox((16, 16), Affine(10, 0, 0, 0, -10, 160), "EPSG:32632")
        lazy = grid.resample_to_grid(band.chunk({"y": 4, "x": 4}), target, chunks=8)
        assert lazy.chunks is not None
        np.testing.assert_array_equal(lazy.values, grid.resample_to_grid(band, target).values)

    def test_tile_in_another_utm_zone_lands_on_the_grid(self) -> None:
        from pyproj import Transformer

        x, y = Transformer.from_crs("EPSG:32632", "EPSG:32633", always_xy=True).transform(830_000, 5_000_000)
        other = raster(np.full((20, 20), 7.0), x0=round(x), y0=round(y), crs="EPSG:32633")
        target = grid.target_geobox([other.odc.geobox], crs="EPSG:32632")
        out = grid.resample_to_grid(other, target).values
        assert target.crs.epsg == 32632
        assert np.nanmin(out) == 7 and np.nanmax(out) == 7
        assert np.isfinite(out).mean() > 0.8


class TestTargetGeobox:
    def test_union_of_footprints_at_finest_resolution(self) -> None:
        a = raster(np.zeros((4, 4)), x0=0, res=10).odc.geobox
        b = raster(np.zeros((2, 2)), x0=20, res=20).odc.geobox
        gb = grid.target_geobox([a, b])
        assert gb.resolution.x == 10
        assert tuple(gb.boundingbox) == (0, 0, 60, 40)

    def test_resolution_can_be_chosen(self) -> None:
        a = raster(np.zeros((4, 4))).odc.geobox
        assert grid.target_geobox([a], resolution=20).shape == (2, 2)


class TestMosaic:
    @pytest.fixture
    def two_tiles(self):
        left = raster(np.full((4, 4), 1.0), x0=0)
        right = raster(np.full((4, 4), 2.0), x0=20)
        target = grid.target_geobox([left.odc.geobox, right.odc.geobox])
        return [grid.scene_on_grid({"B1": t}, target) for t in (left, right)]

    def test_first_valid_takes_the_first_tile_over_the_overlap(self, two_tiles) -> None:
        out = grid.mosaic(two_tiles, method="first").values[0]
        np.testing.assert_array_equal(out, np.tile([1, 1, 1, 1, 2, 2], (4, 1)))

    def test_median_over_the_overlap(self, two_tiles) -> None:
        out = grid.mosaic(two_tiles, method="median").values[0]
        np.testing.assert_array_equal(out, np.tile([1, 1, 1.5, 1.5, 2, 2], (4, 1)))

    def test_least_cloudy_first(self, two_tiles) -> None:
        out = grid.mosaic(two_tiles, method="least-cloudy", cloud_fractions=[0.5, 0.1]).values[0]
        np.testing.assert_array_equal(out, np.tile([1, 1, 2, 2, 2, 2], (4, 1)))

    def test_clouds_are_filled_from_the_next_scene(self) -> None:
        a, b = raster(np.full((2, 2), 1.0)), raster(np.full((2, 2), 2.0))
        clear = raster(np.array([[1, 0], [1, 1]]))
        gb = a.odc.geobox
        out = grid.mosaic([grid.scene_on_grid({"B1": a}, gb, clear=clear), grid.scene_on_grid({"B1": b}, gb)]).values
        np.testing.assert_array_equal(out[0], [[1, 2], [1, 1]])

    def test_unknown_method(self, two_tiles) -> None:
        with pytest.raises(ValueError, match="first, median, least-cloudy"):
            grid.mosaic(two_tiles, method="max")


class TestSplitAndNormalize:
    def test_block_split_is_deterministic_and_blockwise(self) -> None:
        a = grid.block_split((100, 130), block=20, key="area").compute()
        b = grid.block_split((100, 130), block=20, key="area").compute()
        np.testing.assert_array_equal(a, b)
        assert a.shape == (100, 130)
        assert set(np.unique(a)) == {0, 1, 2}
        for r in range(0, 100, 20):
            for c in range(0, 130, 20):
                assert len(np.unique(a[r:r + 20, c:c + 20])) == 1

    def test_only_blocks_holding_labels_are_shared_out(self) -> None:
        labelled = np.zeros((100, 130), bool)
        labelled[[5, 25, 45, 65, 85], [5, 45, 85, 125, 5]] = True  # five labelled blocks of 20
        split = grid.block_split((100, 130), block=20, key="area", labelled=labelled).compute()
        held = split[labelled]
        assert held.tolist().count(grid.SPLITS["val"]) == 1 and held.tolist().count(grid.SPLITS["test"]) == 1
        assert (split[~grid.labelled_blocks(labelled, 20).repeat(20, 0).repeat(20, 1)[:100, :130]] == 0).all()
        everywhere = np.ones((100, 130), bool)
        np.testing.assert_array_equal(grid.block_split((100, 130), block=20, key="area", labelled=everywhere),
                                      grid.block_split((100, 130), block=20, key="area"))

    def test_the_block_shrinks_until_three_blocks_hold_labels(self) -> None:
        labelled = np.zeros((128, 128), bool)
        labelled[[10, 40, 100], [10, 40, 100]] = True  # all three inside one 128 block, in three 32 blocks
        assert grid.fit_block(labelled, 128) == 32
        assert grid.fit_block(labelled, 128, smallest=64) == 64
        assert grid.fit_block(np.ones((128, 128), bool), 64) == 64

    def test_statistics_come_from_the_training_area_only(self) -> None:
        image = np.full((1, 4, 4), 100.0)
        image[0, :2, :2] = [[1, 3], [1, 3]]
        region = np.zeros((4, 4), bool)
        region[:2, :2] = True
        stats = grid.band_statistics(raster(image[0]).expand_dims(band=["B1"]), region, percentiles=(0, 100))
        assert stats["mean"][0] == pytest.approx(2.0)
        assert stats["std"][0] == pytest.approx(1.0)
        assert (stats["low"][0], stats["high"][0]) == (1.0, 3.0)

    def test_a_few_saturated_pixels_do_not_stretch_the_statistics(self) -> None:
        values = np.random.default_rng(0).normal(0.2, 0.02, (1, 100, 100))
        values[0, :3, :10] = 2.8  # 0.3% of the pixels: bright roofs
        image = raster(values[0]).expand_dims(band=["B1"])
        stats = grid.band_statistics(image, np.ones((100, 100), bool))
        assert stats["mean"][0] == pytest.approx(0.2, abs=0.002) and stats["std"][0] == pytest.approx(0.02, rel=0.1)
        out = grid.normalize(image, **stats).values
        assert np.abs(out).max() < 4  # plain mean/std standardization puts the roofs at ~16

    def test_normalize(self) -> None:
        image = raster(np.array([[1.0, 3.0]])).expand_dims(band=["B1"])
        out = grid.normalize(image, np.array([2.0]), np.array([1.0]))
        np.testing.assert_array_equal(out.values, [[[-1.0, 1.0]]])
        clipped = grid.normalize(image, np.array([2.0]), np.array([1.0]), low=np.array([1.5]), high=np.array([9.0]))
        np.testing.assert_array_equal(clipped.values, [[[-0.5, 1.0]]])


class TestReadMosaic:
    def test_chunked_file_reader_equals_the_lazy_stack_path(self, tmp_path) -> None:
        from tasks.satellite import sources
        from tasks.satellite.synthetic import write_synthetic_scenes

        write_synthetic_scenes(tmp_path, when="2024-06-01", size=96, tile=64, two_zones=True, cloud_cover=0.2)
        (tmp_path / "labels.tif").unlink()
        scenes = sources.find_scenes(str(tmp_path))
        bands = ["B02", "B11"]
        lazy = [{b: sources.open_band(*s.bands[b], chunks=32) for b in bands} for s in scenes]
        geobox = grid.target_geobox([d.odc.geobox for scene in lazy for d in scene.values()])
        stacks = [grid.scene_on_grid(scene_bands, geobox, clear=sources.open_mask(s.mask, s.mask_kind, chunks=32))
                  for s, scene_bands in zip(scenes, lazy, strict=True)]
        expected = grid.mosaic(stacks, method="first").values
        actual = sources.read_mosaic(scenes, bands, geobox, chunks=40)
        assert actual.odc.geobox == geobox
        np.testing.assert_array_equal(np.isnan(actual.values), np.isnan(expected))
        np.testing.assert_allclose(actual.values, expected, rtol=0, atol=1.01e-4, equal_nan=True)  # 1 DN
        assert np.isnan(expected).any() and np.isfinite(expected).mean() > 0.5

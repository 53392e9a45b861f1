"""Patches that respect the spatial split, the chunked class map, change between maps, the synthetic area."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import torch
import xarray as xr

from models.satellite import PixelFCN
from tasks.satellite import change, scoring, synthetic, training
from tasks.satellite.labels import UNLABELLED


@pytest.fixture
def split_grid():
    split = np.zeros((8, 8), "uint8")
    split[:, 4:] = 1
    labels = np.arange(64).reshape(8, 8).astype("int16") % 3
    return split, labels


class TestPatches:
    def test_windows_stay_inside_blocks_of_their_split(self, split_grid) -> None:
        split, labels = split_grid
        windows = training.patch_windows(split, labels, 1, patch=2, block=4, random_per_block=5)
        assert windows
        for r, c in windows:
            assert (split[r:r + 2, c:c + 2] == 1).all()

    def test_other_splits_and_nan_pixels_never_reach_the_loss(self, split_grid) -> None:
        split, labels = split_grid
        image = np.ones((2, 8, 8), "float32")
        image[0, 0, 0] = np.nan
        x, y = training.extract_patches(training.take_patches(image, [(0, 2)], patch=4), labels, split, 0, [(0, 2)],
                                        patch=4)
        assert x.shape == (1, 2, 4, 4) and np.isfinite(x).all()
        assert (y[0, :, 2:] == UNLABELLED).all()
        x, y = training.extract_patches(training.take_patches(image, [(0, 0)], patch=2), labels, split, 0, [(0, 0)],
                                        patch=2)
        assert y[0, 0, 0] == UNLABELLED and y[0, 1, 1] == labels[1, 1]

    def test_flatten_keeps_labelled_pixels(self) -> None:
        proba = np.zeros((1, 3, 2, 2))
        proba[0, 2] = 1
        labels = np.array([[[0, UNLABELLED], [2, 1]]])
        flat, y = training.flatten_labelled(proba, labels)
        assert flat.shape == (3, 3) and list(y) == [0, 2, 1]

    def test_baseline_probabilities_cover_absent_classes(self) -> None:
        x = np.array([[0.0], [0.1], [1.0], [1.1]])
        model = training.fit_pixel_baseline(x, np.array([0, 0, 2, 2]))
        proba = training.baseline_proba(model, x, 3)
        assert proba.shape == (4, 3) and np.allclose(proba[:, 1], 0) and np.allclose(proba.sum(1), 1)


    def test_patches_of_a_lazy_image_equal_the_in_memory_ones(self) -> None:
        import dask.array as da

        image = np.random.default_rng(1).normal(size=(3, 20, 20)).astype("float32")
        windows = [(0, 0), (4, 8), (12, 12)]
        lazy = training.take_patches(da.from_array(image, chunks=(3, 7, 7)), windows, patch=8)
        np.testing.assert_array_equal(lazy.compute(), training.take_patches(image, windows, patch=8))


class TestClassMap:
    def test_chunked_scoring_equals_scoring_the_whole_image(self) -> None:
        torch.manual_seed(0)
        model = PixelFCN(3, 4, width=8).eval()
        image = np.random.default_rng(0).normal(size=(3, 40, 50)).astype("float32")
        image[:, 5, 7] = np.nan
        whole = scoring.classify_block(image, model)
        lazy = xr.DataArray(image, dims=("band", "y", "x")).chunk({"band": 1, "y": 16, "x": 16})
        out = scoring.classify_image(lazy, model, halo=8)
        np.testing.assert_array_equal(out["class"].values, whole[0].astype("uint8"))
        assert out["class"].values[5, 7] == scoring.NODATA_CLASS
        np.testing.assert_allclose(out["confidence"].values, whole[1], rtol=1e-5)


class TestChange:
    def test_class_areas_in_hectares(self) -> None:
        classes = np.array([[0, 0], [1, scoring.NODATA_CLASS]], dtype="uint8")
        assert change.class_areas(classes, ["a", "b"], pixel_area_m2=100) == {"a": 0.02, "b": 0.01}

    def test_change_between_two_maps(self) -> None:
        before = np.array([[0, 0], [1, 1]], dtype="uint8")
        after = np.array([[0, 1], [1, scoring.NODATA_CLASS]], dtype="uint8")
        changed, table, share = change.change_between(before, after, ["forest", "bare"])
        assert changed.tolist() == [[False, True], [False, False]]
        assert share == pytest.approx(1 / 3)
        assert table.to_dict("records") == [{"from": "forest", "to": "bare", "pixels": 1}]


class TestSynthetic:
    def test_clearing_grows_through_the_year(self) -> None:
        spring = synthetic.land_cover(96, when=date(2024, 3, 1))
        autumn = synthetic.land_cover(96, when=date(2024, 10, 1))
        assert (autumn == 4).sum() > (spring == 4).sum()
        assert ((spring == 4) & (autumn != 4)).sum() == 0

    def test_writes_bands_at_two_resolutions_masks_and_labels(self, tmp_path) -> None:
        import rasterio

        out = synthetic.write_synthetic_scenes(tmp_path, size=96, tile=64, two_zones=True)
        assert len(out["scenes"]) == 4
        with rasterio.open(f"{out['scenes'][0]}_B02.tif") as b10, rasterio.open(f"{out['scenes'][0]}_B11.tif") as b20:
            assert b10.res == (10, 10) and b20.res == (20, 20) and b10.nodata == 0
        with rasterio.open(f"{out['scenes'][-1]}_SCL.tif") as scl:
            assert scl.crs.to_epsg() == 32633 and synthetic.SCL_CLOUD in np.unique(scl.read(1))
        with rasterio.open(out["labels"]) as labels:
            assert set(np.unique(labels.read(1))) <= {0, 1, 2, 3, 4, 5}

"""Patches that respect the spatial split, the chunked class map, change between maps, the synthetic area."""

from __future__ import annotations

import os
from datetime import date

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from models.satellite import PixelFCN, UNet
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

    def test_a_partial_edge_block_is_tiled_to_its_edge_and_counted_once(self) -> None:
        split = np.zeros((6, 6), "uint8")
        labels = np.arange(36).reshape(6, 6).astype("int16") % 3
        windows = training.patch_windows(split, labels, 0, patch=4, block=6)
        assert windows == [(0, 0), (0, 2), (2, 0), (2, 2)]  # the last patches end at the block's edge
        image = np.ones((1, 6, 6), "float32")
        _, y = training.extract_patches(training.take_patches(image, windows, patch=4), labels, split, 0, windows,
                                        patch=4, once=True)
        assert (y != UNLABELLED).sum() == 36  # every pixel reached, none twice
        _, y = training.extract_patches(training.take_patches(image, windows, patch=4), labels, split, 0, windows,
                                        patch=4)
        assert (y != UNLABELLED).sum() == 64

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
        out = scoring.classify_image(lazy, model, halo=8, tile=16)
        np.testing.assert_array_equal(out["class"].values, whole[0].astype("uint8"))
        assert out["class"].values[5, 7] == scoring.NODATA_CLASS
        np.testing.assert_allclose(out["confidence"].values, whole[1], rtol=1e-5)

    def test_a_unet_tiled_with_its_halo_joins_without_a_seam(self) -> None:
        torch.manual_seed(0)
        model = UNet(3, 4, width=4, depth=2).eval()
        image = np.random.default_rng(0).normal(size=(3, 150, 170)).astype("float32")
        whole = scoring.classify_block(image, model)
        lazy = xr.DataArray(image, dims=("band", "y", "x")).chunk({"band": 1, "y": 50, "x": 50})
        out = scoring.classify_image(lazy, model, halo=model.halo, tile=64)
        np.testing.assert_allclose(out["confidence"].values, whole[1], rtol=1e-4)
        np.testing.assert_array_equal(out["class"].values, whole[0].astype("uint8"))

    @pytest.mark.parametrize(("size", "sizes"), [(150, (64, 86)), (170, (64, 64, 42)), (64, (64,)), (20, (20,))])
    def test_tiles_keep_to_the_grid_and_never_end_shorter_than_the_halo(self, size, sizes) -> None:
        assert scoring.tile_sizes(size, 28, 64) == sizes


class TestUNet:
    @pytest.mark.parametrize("shape", [(32, 32), (37, 50), (5, 9)])
    def test_gives_a_class_score_for_every_pixel_of_any_image_size(self, shape) -> None:
        out = UNet(4, 6, width=4, depth=2).eval()(torch.randn(2, 4, *shape))
        assert out.shape == (2, 6, *shape)

    def test_halo_covers_the_receptive_field(self) -> None:
        model = UNet(2, 3, width=4, depth=2).eval()
        x = torch.zeros(1, 2, 128, 128, requires_grad=True)
        model(x)[0, 0, 64, 64].backward()
        rows, cols = np.nonzero(x.grad.abs().sum((0, 1)).numpy())
        assert max(64 - rows.min(), rows.max() - 64, 64 - cols.min(), cols.max() - 64) <= model.halo


class TestBlockedCrossValidation:
    @pytest.fixture
    def grid_of_blocks(self):
        """A 24 x 32 grid of 4-pixel blocks (6 x 8): split ids per block, two training blocks unlabelled."""
        blocks = np.zeros((6, 8), "uint8")
        blocks[0, :3] = 1
        blocks[5, 5:] = 2
        split = np.kron(blocks, np.ones((4, 4), "uint8"))
        labels = (np.arange(24 * 32).reshape(24, 32) % 3).astype("int16")
        labels[:4, 4 * 6:4 * 8] = UNLABELLED
        return split, labels, blocks

    def test_folds_hold_out_disjoint_whole_training_blocks_covering_every_labelled_one(self, grid_of_blocks):
        split, labels, blocks = grid_of_blocks
        ids = training.block_folds(split, labels, 3, block=4, patch=2, seed=5)
        labelled_train = (blocks == 0)
        labelled_train[0, 6:] = False
        assert ((ids >= 0) == labelled_train).all()
        assert sorted(np.bincount(ids[ids >= 0]).tolist()) == [13, 13, 14]  # 48 blocks - 3 val - 3 test - 2 unlabelled
        held = [training.fold_split(split, ids, k, block=4) == training.CV_HELD for k in range(3)]
        assert all(not (held[i] & held[j]).any() for i in range(3) for j in range(i + 1, 3))
        assert (np.logical_or.reduce(held) == np.kron(labelled_train, np.ones((4, 4), bool))).all()
        np.testing.assert_array_equal(ids, training.block_folds(split, labels, 3, block=4, patch=2, seed=5))

    def test_a_fold_trains_on_the_other_training_blocks_and_keeps_validation_for_early_stopping(self,
                                                                                             grid_of_blocks):
        split, labels, _ = grid_of_blocks
        ids = training.block_folds(split, labels, 3, block=4, patch=2, seed=5)
        fold = training.fold_split(split, ids, 1, block=4)
        per_pixel = np.kron(ids, np.ones((4, 4), "int16"))
        assert ((fold == training.CV_HELD) == (per_pixel == 1)).all()
        assert ((fold == training.CV_TRAIN) == ((per_pixel >= 0) & (per_pixel != 1))).all()
        assert ((fold == training.CV_VAL) == (split == 1)).all()
        assert (fold[split == 2] == training.CV_UNUSED).all()
        windows = training.patch_windows(fold, labels, training.CV_TRAIN, patch=2, block=4, random_per_block=6)
        assert windows and all((fold[r:r + 2, c:c + 2] == training.CV_TRAIN).all() for r, c in windows)


    def test_more_folds_than_labelled_training_blocks_is_an_error_a_person_can_act_on(self, grid_of_blocks):
        from tasks.errors import BadInputError
        from tasks.satellite.classifier import _block_folds

        split, labels, _ = grid_of_blocks
        with pytest.raises(BadInputError, match="--folds 41 needs at least 41 labelled training blocks, the area "
                                                "has 40; use fewer folds or a smaller --block"):
            _block_folds(split, labels, 41, block=4, patch=2, seed=0)


class TestSceneSlices:
    def test_labelled_positions_follow_the_flatten_order(self) -> None:
        y = np.array([[[0, UNLABELLED], [2, 1]], [[UNLABELLED, 1], [0, UNLABELLED]]])
        rows, cols = training.labelled_positions([(0, 0), (4, 6)], y, patch=2)
        assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 0), (1, 1), (4, 7), (5, 6)]
        proba = np.zeros((2, 3, 2, 2))
        assert len(training.flatten_labelled(proba, y)[1]) == len(rows)

    def test_metrics_per_scene_count_overlap_pixels_for_each_scene(self) -> None:
        from shapely.geometry import box

        from tasks.insight import slice_metrics

        footprints = {"A": box(0, 0, 30, 10), "B": box(20, 0, 50, 10)}
        x = np.array([5.0, 15.0, 25.0, 35.0, 45.0, 60.0])  # 25 is in both, 60 in neither
        member = training.scene_membership(footprints, x, np.full(6, 5.0))
        assert member.tolist() == [[True, False], [True, False], [True, True], [False, True], [False, True],
                                   [False, False]]
        y = np.array([0, 1, 1, 0, 1, 1])
        y_pred = np.array([0, 1, 0, 0, 0, 1])
        pixel, scene = np.nonzero(member)
        table = slice_metrics(y[pixel], y_pred[pixel], np.array(list(footprints))[scene]).set_index("slice")
        assert table["count"].to_dict() == {"A": 3, "B": 3}
        assert table.loc["A", "accuracy"] == pytest.approx(2 / 3) and table.loc["B", "accuracy"] == pytest.approx(1 / 3)
        as_lists = slice_metrics(y, y_pred, pd.Series([["A"], ["A"], ["A", "B"], ["B"], ["B"], []]))
        pd.testing.assert_frame_equal(as_lists.set_index("slice"), table)


class TestUncertaintyMap:
    def image(self) -> xr.DataArray:
        data = np.random.default_rng(0).normal(size=(3, 40, 50)).astype("float32")
        data[:, 5, 7] = np.nan
        return xr.DataArray(data, dims=("band", "y", "x")).chunk({"band": 1, "y": 16, "x": 16})

    def test_without_dropout_the_map_is_the_entropy_of_the_deterministic_softmax(self) -> None:
        torch.manual_seed(0)
        model = PixelFCN(3, 4, width=8, dropout=0.0).eval()
        image = self.image()
        plain = scoring.classify_image(image, model, halo=8)
        mc = scoring.classify_image(image, model, halo=8, mc_samples=5)
        assert "uncertainty" not in plain and mc["uncertainty"].shape == plain["class"].shape
        np.testing.assert_array_equal(mc["class"].values, plain["class"].values)
        with torch.no_grad():
            proba = torch.softmax(model(torch.from_numpy(np.nan_to_num(image.values))[None]), 1)[0].numpy()
        entropy = -(proba * np.log(proba)).sum(axis=0)
        entropy[5, 7] = np.nan
        np.testing.assert_allclose(mc["uncertainty"].values, entropy, rtol=1e-4, atol=1e-6)

    def test_dropout_passes_are_seeded_per_chunk_whatever_the_order(self) -> None:
        torch.manual_seed(0)
        model = PixelFCN(3, 4, width=8, dropout=0.5).eval()
        first = scoring.classify_image(self.image(), model, halo=8, mc_samples=4, seed=3)
        threads = first["uncertainty"].data.compute(scheduler="threads")
        np.testing.assert_array_equal(first["uncertainty"].data.compute(scheduler="synchronous"), threads)
        again = scoring.classify_image(self.image(), model, halo=8, mc_samples=4, seed=3)["uncertainty"].values
        np.testing.assert_array_equal(again, threads)
        other = scoring.classify_image(self.image(), model, halo=8, mc_samples=4, seed=4)["uncertainty"].values
        assert not np.allclose(other, threads, equal_nan=True)
        valid = np.isfinite(threads)
        assert valid.sum() == 40 * 50 - 1 and (threads[valid] >= 0).all() and (threads[valid] <= np.log(4)).all()
        assert all(not m.training for m in model.modules())

    def test_summary_over_valid_pixels_and_per_predicted_class(self) -> None:
        uncertainty = np.array([[0.0, 0.5], [1.0, np.nan]], dtype="float32")
        classes = np.array([[0, 0], [1, scoring.NODATA_CLASS]], dtype="uint8")
        summary = scoring.uncertainty_summary(uncertainty, classes, ["a", "b", "c"])
        assert summary["pixels"] == 3 and summary["mean"] == pytest.approx(0.5) and summary["max"] == 1.0
        assert summary["per_class_mean"] == {"a": 0.25, "b": 1.0}
        assert summary["max_possible"] == pytest.approx(np.log(3))


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


def test_flipped_patches_keep_labels_on_their_pixels_and_draw_every_orientation() -> None:
    import torch

    from tasks.satellite.training import FlippedPatches

    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    y = x[:, 0].astype(np.int64)  # each label equals its pixel's first band
    patches, seen = FlippedPatches(x, y), set()
    torch.manual_seed(0)
    for _ in range(64):
        xi, yi = patches[0]
        assert torch.equal(xi[0].long(), yi) and torch.equal(xi[1], xi[0] + 16)
        seen.add(tuple(yi.flatten().tolist()))
    assert len(seen) == 8


def test_scoring_tasks_run_torch_on_their_share_of_the_cores_and_restore_it() -> None:
    from distributed import Client, LocalCluster

    before = torch.get_num_threads()
    assert scoring.torch_threads_per_task() is None

    def inside() -> tuple[int | None, int, int]:
        with scoring.torch_threads_of_this_task():
            during = torch.get_num_threads()
        return scoring.torch_threads_per_task(), during, torch.get_num_threads()

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        share, during, after = client.submit(inside, pure=False).result()
    expected = max(1, (os.cpu_count() or 1) // 2)
    assert share == during == expected
    assert after == before
    assert torch.get_num_threads() == before

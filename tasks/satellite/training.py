"""Patches and pixel samples from the mosaic, split by space; the per-pixel baseline."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.utils.data import Dataset

from tasks.satellite.labels import UNLABELLED

PATCH = 32  # side of a training patch in pixels; a block of the spatial split is at least this big


def patch_windows(split: np.ndarray, labels: np.ndarray, split_id: int, *, patch: int, block: int,
                  random_per_block: int = 0, seed: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of patches inside the blocks of one split that hold labelled pixels.

    Each block is tiled with patches, the last row and column of patches moved back to end at the block's edge
    when the block is a partial one at the grid's edge (so its labels are reached; see ``extract_patches(once=)``
    for the overlap); ``random_per_block`` adds randomly placed patches inside the block (training augmentation)
    that never leave it.
    """
    rng = np.random.default_rng(seed)
    h, w = split.shape
    windows = []
    for r0 in range(0, h - patch + 1, block):
        for c0 in range(0, w - patch + 1, block):
            if split[r0, c0] != split_id:
                continue
            rows = min(block, h - r0)
            cols = min(block, w - c0)
            if not (labels[r0:r0 + rows, c0:c0 + cols] != UNLABELLED).any():
                continue
            for dr in _tile_offsets(rows, patch):
                for dc in _tile_offsets(cols, patch):
                    windows.append((r0 + dr, c0 + dc))
            for _ in range(random_per_block if rows >= patch and cols >= patch else 0):
                dr, dc = rng.integers(0, rows - patch + 1), rng.integers(0, cols - patch + 1)
                windows.append((r0 + int(dr), c0 + int(dc)))
    return windows


def _tile_offsets(size: int, patch: int) -> list[int]:
    offsets = list(range(0, size - patch + 1, patch))
    return offsets + [size - patch] if size >= patch and size % patch else offsets


def take_patches(image, windows: list[tuple[int, int]], *, patch: int):
    """(n, band, p, p) patches of a (band, y, x) image; lazy if the image is a Dask array, so only the
    windows are read."""
    if not windows:
        return np.empty((0, image.shape[0], patch, patch), "float32")
    return np.stack([image[:, r:r + patch, c:c + patch] for r, c in windows])


def extract_patches(patches: np.ndarray, labels: np.ndarray, split: np.ndarray, split_id: int,
                    windows: list[tuple[int, int]], *, patch: int, once: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) for a split from its image ``patches`` (see take_patches): X with NaN as 0; Y (n, p, p) with
    pixels that are unlabelled, NaN in the image, or in another split set to UNLABELLED, so they never reach
    the loss. ``once``: a pixel counts in the first patch holding it only (evaluation, where overlapping edge
    patches must not count a pixel twice)."""
    ys = []
    seen = np.zeros(labels.shape, dtype=bool) if once else None
    for (r, c), x in zip(windows, patches, strict=True):
        y = labels[r:r + patch, c:c + patch].astype("int64")
        keep = (split[r:r + patch, c:c + patch] == split_id) & np.isfinite(x).all(axis=0)
        if seen is not None:
            keep &= ~seen[r:r + patch, c:c + patch]
            seen[r:r + patch, c:c + patch] = True
        ys.append(np.where(keep, y, UNLABELLED))
    if not ys:
        return np.empty((0, patches.shape[1], patch, patch), "float32"), np.empty((0, patch, patch), "int64")
    return np.nan_to_num(patches, nan=0.0).astype("float32"), np.stack(ys)


def fit_pixel_baseline(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> LogisticRegression:
    """Per-pixel multinomial logistic regression on the same normalized bands."""
    return LogisticRegression(max_iter=1000, random_state=seed).fit(x, y)


def baseline_proba(model: LogisticRegression, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities with a column for every class, also those absent from the baseline's training data."""
    proba = np.zeros((len(x), n_classes))
    proba[:, model.classes_] = model.predict_proba(x)
    return proba


def flatten_labelled(proba: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (n, classes) probabilities and (n,) classes from patch outputs, labelled pixels only."""
    classes = proba.shape[1]
    flat = proba.transpose(0, 2, 3, 1).reshape(-1, classes)
    y = labels.reshape(-1)
    keep = y != UNLABELLED
    return flat[keep], y[keep]


CV_TRAIN, CV_VAL, CV_HELD, CV_UNUSED = 0, 1, 2, 255


def block_folds(split: np.ndarray, labels: np.ndarray, folds: int, *, block: int, patch: int, seed: int = 0,
                pool_id: int = 0) -> np.ndarray:
    """Fold id (0 .. folds - 1) per block of the split grid, -1 for blocks outside the fold pool.

    The pool is the blocks of split ``pool_id`` (the training blocks) holding labelled pixels where patches are
    cut (see :func:`patch_windows`); they are shuffled with ``seed`` and dealt out in turn, so fold sizes
    differ by one block at most. Blocks, never pixels: a fold is a set of whole blocks.
    """
    h, w = split.shape
    ids = np.full((-(-h // block), -(-w // block)), -1, dtype="int16")
    eligible = []
    for r0 in range(0, h - patch + 1, block):
        for c0 in range(0, w - patch + 1, block):
            rows, cols = (min(block, h - r0) // patch) * patch, (min(block, w - c0) // patch) * patch
            if split[r0, c0] == pool_id and (labels[r0:r0 + rows, c0:c0 + cols] != UNLABELLED).any():
                eligible.append((r0 // block, c0 // block))
    order = np.random.default_rng(seed).permutation(len(eligible))
    for turn, i in enumerate(order):
        ids[eligible[i]] = turn % folds
    return ids


def fold_split(split: np.ndarray, fold_ids: np.ndarray, fold: int, *, block: int, val_id: int = 1) -> np.ndarray:
    """The split grid of one cross-validation fold: the fold's blocks held out (CV_HELD), the other pooled
    blocks for training (CV_TRAIN), the blocks of split ``val_id`` kept for early stopping (CV_VAL), the rest
    (test blocks, unlabelled blocks) unused."""
    h, w = split.shape
    per_pixel = np.repeat(np.repeat(fold_ids, block, axis=0), block, axis=1)[:h, :w]
    out = np.full((h, w), CV_UNUSED, dtype="uint8")
    out[np.asarray(split) == val_id] = CV_VAL
    out[(per_pixel >= 0) & (per_pixel != fold)] = CV_TRAIN
    out[per_pixel == fold] = CV_HELD
    return out


def labelled_positions(windows: list[tuple[int, int]], labels: np.ndarray, *,
                       patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) on the grid of each labelled pixel of (n, p, p) patch labels, in the order of
    :func:`flatten_labelled`."""
    if not windows:
        return np.empty(0, "int64"), np.empty(0, "int64")
    corners = np.asarray(windows, dtype="int64")
    offset = np.arange(patch)
    shape = (len(corners), patch, patch)
    rows = np.broadcast_to(corners[:, 0, None, None] + offset[None, :, None], shape)
    cols = np.broadcast_to(corners[:, 1, None, None] + offset[None, None, :], shape)
    keep = labels.reshape(-1) != UNLABELLED
    return rows.reshape(-1)[keep], cols.reshape(-1)[keep]


def scene_membership(footprints: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n, scenes) booleans: whether each point (grid CRS) lies inside each scene's footprint polygon
    (same CRS); a point in an overlap is inside several."""
    import shapely

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not footprints:
        return np.zeros((len(x), 0), dtype=bool)
    return np.stack([shapely.contains_xy(geom, x, y) for geom in footprints.values()], axis=1)


class FlippedPatches(Dataset):
    """Training patches (X: n, bands, h, w; Y: n, h, w), each drawn in one of its eight flips and quarter turns:
    imagery has no "up", so the network should not learn one. Drawn from torch's global generator, which the
    training loop seeds."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        turns, flip = (int(v) for v in torch.randint(0, 4, (2,)))
        x, y = np.rot90(self.x[i], turns, axes=(-2, -1)), np.rot90(self.y[i], turns, axes=(-2, -1))
        if flip % 2:
            x, y = x[..., ::-1], y[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))

"""Stratified splits shared by the record-level domains (genome, sentiment)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

SPLITS = {"train": 0, "val": 1, "test": 2}


def stratified_split(labels: np.ndarray, *, seed: int = 0, val: float = 0.15, test: float = 0.15) -> np.ndarray:
    """A split id per record (0 train, 1 val, 2 test) with every class in the same proportion in each."""
    labels = np.asarray(labels)
    split = np.zeros(len(labels), dtype=np.uint8)
    rest, test_idx = next(StratifiedShuffleSplit(1, test_size=test, random_state=seed).split(labels, labels))
    split[test_idx] = SPLITS["test"]
    sub = StratifiedShuffleSplit(1, test_size=val / (1 - test), random_state=seed + 1)
    _, val_idx = next(sub.split(labels[rest], labels[rest]))
    split[rest[val_idx]] = SPLITS["val"]
    return split


def kfold_indices(labels: np.ndarray, folds: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))

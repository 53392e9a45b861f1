"""Stratified splits shared by the record-level domains (genome, sentiment)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

SPLITS = {"train": 0, "val": 1, "test": 2}


def stratified_holdout(labels: np.ndarray, size: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``size`` share of ``labels``; a class of one record cannot be split and stays."""
    values, counts = np.unique(labels, return_counts=True)
    splittable = np.flatnonzero(np.isin(labels, values[counts >= 2]))
    if len(splittable) < 2:
        return np.empty(0, dtype=np.intp)
    picker = StratifiedShuffleSplit(1, test_size=size, random_state=seed)
    _, held = next(picker.split(splittable, labels[splittable]))
    return splittable[held]


def stratified_split(labels: np.ndarray, *, seed: int = 0, val: float = 0.15, test: float = 0.15) -> np.ndarray:
    """A split id per record (0 train, 1 val, 2 test) with every class in the same proportion in each; a class
    with a single record (or a single one left for validation) is trained on only (see :func:`rare_classes`)."""
    labels = np.asarray(labels)
    split = np.zeros(len(labels), dtype=np.uint8)
    test_idx = stratified_holdout(labels, test, seed)
    split[test_idx] = SPLITS["test"]
    rest = np.flatnonzero(split != SPLITS["test"])
    split[rest[stratified_holdout(labels[rest], val / (1 - test), seed + 1)]] = SPLITS["val"]
    return split


def rare_classes(labels: np.ndarray, split: np.ndarray, names: list[str] | None = None, *,
                 below: int = 10) -> list[dict]:
    """Classes with fewer than ``below`` records, how many of them went to train, validation and test, and what
    that means for the run: nothing is dropped, but a class absent from test has no test metric."""
    values, counts = np.unique(np.asarray(labels), return_counts=True)
    out = []
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        if count >= below:
            continue
        where = {name: int(((labels == value) & (split == i)).sum()) for name, i in SPLITS.items()}
        note = ("trained on only: too few records to validate or test it" if where["test"] == 0
                else "kept in every split it fits; its metrics rest on very few records")
        out.append({"class": names[value] if names else value, "records": count, **where, "note": note})
    return out


def kfold_indices(labels: np.ndarray, folds: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))

"""Monitoring figures: class areas, and what changed since the previous run of the same area."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.satellite.scoring import NODATA_CLASS


def class_areas(class_map: np.ndarray, class_names: list[str], *, pixel_area_m2: float) -> dict[str, float]:
    """Hectares per class."""
    counts = np.bincount(class_map[class_map != NODATA_CLASS].ravel().astype(np.int64),
                         minlength=len(class_names))
    return {name: float(counts[i] * pixel_area_m2 / 10_000) for i, name in enumerate(class_names)}


def change_between(previous: np.ndarray, current: np.ndarray,
                   class_names: list[str]) -> tuple[np.ndarray, pd.DataFrame, float]:
    """A change mask, the from-to transition counts, and the changed share of pixels valid in both maps."""
    valid = (previous != NODATA_CLASS) & (current != NODATA_CLASS)
    changed = valid & (previous != current)
    k = len(class_names)
    pairs = previous[changed].astype(np.int64) * k + current[changed].astype(np.int64)
    counts = np.bincount(pairs, minlength=k * k).reshape(k, k)
    rows = [{"from": class_names[i], "to": class_names[j], "pixels": int(counts[i, j])}
            for i in range(k) for j in range(k) if counts[i, j]]
    table = pd.DataFrame(rows, columns=["from", "to", "pixels"]).sort_values("pixels", ascending=False)
    share = float(changed.sum() / valid.sum()) if valid.any() else 0.0
    return changed, table.reset_index(drop=True), share

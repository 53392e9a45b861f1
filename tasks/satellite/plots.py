"""Quicklooks: true-colour mosaic, class map, change map, class areas over time."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from tasks.evaluate import _png  # noqa: E402

PALETTE = ["#2b83ba", "#1a9641", "#fdae61", "#d7191c", "#c2a383", "#984ea3", "#ffff33", "#a6cee3", "#666666"]


def stretch(rgb: np.ndarray) -> np.ndarray:
    """2-98 % percentile stretch per band to 0..1, NaN shown black."""
    out = np.zeros_like(rgb, dtype="float32")
    for i in range(rgb.shape[0]):
        band = rgb[i]
        finite = band[np.isfinite(band)]
        if finite.size:
            lo, hi = np.percentile(finite, [2, 98])
            out[i] = np.clip((band - lo) / max(hi - lo, 1e-9), 0, 1)
    return np.nan_to_num(out).transpose(1, 2, 0)


def quicklook_rgb(rgb: np.ndarray, *, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(stretch(rgb))
    ax.set_title(title)
    ax.set_axis_off()
    return _png(fig)


def quicklook_classes(class_map: np.ndarray, class_names: list[str], *, title: str) -> bytes:
    colours = (PALETTE * (1 + len(class_names) // len(PALETTE)))[: len(class_names)]
    shown = np.ma.masked_greater_equal(class_map, len(class_names))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(shown, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
    ax.legend(handles=[Patch(color=c, label=n) for c, n in zip(colours, class_names, strict=True)],
              loc="lower left", fontsize=8, framealpha=0.8)
    ax.set_title(title)
    ax.set_axis_off()
    return _png(fig)


def quicklook_change(changed: np.ndarray, *, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(changed, cmap=ListedColormap(["#f0f0f0", "#d7191c"]), vmin=0, vmax=1, interpolation="nearest")
    ax.legend(handles=[Patch(color="#d7191c", label="changed")], loc="lower left", fontsize=8)
    ax.set_title(title)
    ax.set_axis_off()
    return _png(fig)


def class_area_history(history: pd.DataFrame) -> bytes:
    """Lines of hectares per class over runs (``history``: one row per run, a column per class)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, column in enumerate(c for c in history.columns if c != "run"):
        ax.plot(history["run"], history[column], marker="o", label=column, color=PALETTE[i % len(PALETTE)])
    ax.set_ylabel("hectares")
    ax.set_title("Class area over monitoring runs")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return _png(fig)


def thumbnail(array: np.ndarray, max_side: int = 1024) -> np.ndarray:
    """Every n-th pixel so the longest side is at most ``max_side``."""
    step = max(1, int(np.ceil(max(array.shape[-2:]) / max_side)))
    return array[..., ::step, ::step]

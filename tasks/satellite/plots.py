"""Quicklooks: true-colour mosaic, class map, change map, class areas over time."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from tasks.figures import png  # noqa: E402

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
    return png(fig)


def quicklook_classes(class_map: np.ndarray, class_names: list[str], *, title: str) -> bytes:
    colours = (PALETTE * (1 + len(class_names) // len(PALETTE)))[: len(class_names)]
    shown = np.ma.masked_greater_equal(class_map, len(class_names))
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(shown, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(class_names) - 0.5, interpolation="nearest")
    ax.legend(handles=[Patch(color=c, label=n) for c, n in zip(colours, class_names, strict=True)],
              loc="lower left", fontsize=8, framealpha=0.8)
    ax.set_title(title)
    ax.set_axis_off()
    return png(fig)


def quicklook_change(changed: np.ndarray, *, title: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(changed, cmap=ListedColormap(["#f0f0f0", "#d7191c"]), vmin=0, vmax=1, interpolation="nearest")
    ax.legend(handles=[Patch(color="#d7191c", label="changed")], loc="lower left", fontsize=8)
    ax.set_title(title)
    ax.set_axis_off()
    return png(fig)


def class_area_history(history: pd.DataFrame) -> bytes:
    """Lines of hectares per class over runs (``history``: one row per run, a column per class)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, column in enumerate(c for c in history.columns if c != "run"):
        ax.plot(history["run"], history[column], marker="o", label=column, color=PALETTE[i % len(PALETTE)])
    ax.set_ylabel("hectares")
    ax.set_title("Class area over monitoring runs")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return png(fig)


def quicklook_uncertainty(uncertainty: np.ndarray, *, title: str, vmax: float | None = None) -> bytes:
    """A per-pixel uncertainty map (NaN shown grey) with its colour scale."""
    fig, ax = plt.subplots(figsize=(6.6, 6))
    cmap = plt.get_cmap("magma").copy()
    cmap.set_bad("#bbbbbb")
    shown = ax.imshow(np.ma.masked_invalid(uncertainty), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="predictive entropy (nats)")
    ax.set_title(title)
    ax.set_axis_off()
    return png(fig)


def quicklook_folds(block_folds: np.ndarray, block_splits: np.ndarray, *, folds: int, val_id: int = 1,
                    test_id: int = 2) -> bytes:
    """The blocks of a spatial cross-validation (``block_folds``: fold 1 .. folds per block, 0 outside the
    folds): a colour per fold, validation and test blocks hatched grey."""
    block_folds, block_splits = np.asarray(block_folds), np.asarray(block_splits)
    colours = (PALETTE * (1 + folds // len(PALETTE)))[:folds]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(np.ma.masked_less(block_folds, 1), cmap=ListedColormap(colours), vmin=0.5, vmax=folds + 0.5,
              interpolation="nearest")
    handles = [Patch(color=c, label=f"fold {i + 1}") for i, c in enumerate(colours)]
    for split_id, label, hatch in ((val_id, "validation (early stopping)", "//"), (test_id, "test (not used)", "xx")):
        rows, cols = np.nonzero(block_splits == split_id)
        for r, c in zip(rows, cols, strict=True):
            ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="#dddddd", edgecolor="#777777",
                                       hatch=hatch))
        handles.append(Patch(facecolor="#dddddd", edgecolor="#777777", hatch=hatch, label=label))
    ax.set_xticks(np.arange(-0.5, block_folds.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, block_folds.shape[0]), minor=True)
    ax.grid(which="minor", color="white", lw=1)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title("Blocks held out per fold")
    return png(fig)

"""The satellite classifier's lifecycle: what ``train_classifier`` trains, tests, explains and compares with.

``SatelliteSpec`` tells models/lifecycle.py how to fit a CNN on patches of the spatial split's training blocks,
score a champion on the test blocks and fit the per-pixel baseline on the same pixels; the helpers around it
build the patches, cross-validate over blocks, and write the test metrics, explanations and embeddings.
"""

from __future__ import annotations

import hashlib
import io
import json

import dask
import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers .rio, also when the stages that read rasters were cached)
import torch
import xarray as xr
from torch import nn

from models.architectures import build
from models.card import Architecture, ModelCard
from models.lifecycle import NO_HONEST_TEST, Decision, Fitted, honest_test, unit_keys
from models.registry import ModelRegistry
from models.train import TrainConfig, predict_proba, predict_proba_mc, seed_everything, train_model
from models.tuning import split_values, tuned
from tasks import insight
from tasks.errors import BadInputError
from tasks.metrics import classification_metrics
from tasks.satellite import grid, training
from tasks.satellite import labels as labelling
from tasks.satellite.files import SatelliteFiles
from tasks.store import read_parquet, write_bytes, write_parquet


def normalized(ds: xr.Dataset, stats: dict) -> xr.DataArray:
    """The mosaic clipped and standardized with ``stats`` (a normalization.json or a model card's; cards written
    before clipping have no ``low``/``high`` and are only standardized)."""
    low, high = stats.get("low"), stats.get("high")
    return grid.normalize(ds["reflectance"], np.asarray(stats["mean"]), np.asarray(stats["std"]),
                          low=None if low is None else np.asarray(low, dtype=float),
                          high=None if high is None else np.asarray(high, dtype=float))


def load_arrays(ds: xr.Dataset, stats: dict):
    """The normalized image stays lazy (patches are read window by window); labels and split are loaded."""
    labels, split = dask.compute(ds["labels"].data, ds["split"].data)
    return normalized(ds, stats).data, labels, split


def _patches(image, labels, split, split_id: int, windows, patch: int, *,
             once: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read the windows of one split from the (lazy) image in one Dask computation, then mask the labels."""
    (taken,) = dask.compute(training.take_patches(image, windows, patch=patch))
    return training.extract_patches(np.asarray(taken), labels, split, split_id, windows, patch=patch, once=once)


ARCHITECTURES = {"unet": "UNet", "fcn": "PixelFCN"}
SEARCH = {"lr": ("log", 3e-4, 3e-3), "width": ("choice", [16, 32, 48]), "dropout": ("float", 0.0, 0.3)}  # --tune


def architecture(model: str, bands: int, classes: int, width: int, tuned_kwargs: dict | None = None) -> Architecture:
    kwargs = {"in_bands": bands, "n_classes": classes, "width": width} | ({"depth": 2} if model == "unet" else {})
    return Architecture(name=ARCHITECTURES[model], kwargs=kwargs | (tuned_kwargs or {}))


def fit_segmenter(arch: Architecture, train: tuple, val: tuple, *, epochs: int, batch_size: int,
                   seed: int, train_kwargs: dict | None = None) -> tuple[nn.Module, dict]:
    """A seeded segmentation network trained on (X, Y) patches in their eight orientations, with class weights
    from the training labels, early stopping on the validation patches. The weights are channels-last: torch's
    CPU convolutions then train about 20% faster on these patches."""
    n_classes = arch.kwargs["n_classes"]
    seed_everything(seed)
    model = build(arch).to(memory_format=torch.channels_last)
    counts = np.bincount(train[1][train[1] >= 0].ravel(), minlength=n_classes).astype("float32")
    weights = np.where(counts > 0, np.sqrt(counts.sum() / np.maximum(counts, 1) / n_classes), 0.0)
    weights = torch.tensor(weights, dtype=torch.float32)
    loss = nn.CrossEntropyLoss(weight=weights, ignore_index=labelling.UNLABELLED)
    history = train_model(model, training.FlippedPatches(*train), val, loss_fn=loss,
                          config=TrainConfig(epochs=epochs, batch_size=batch_size, seed=seed, patience=6,
                                             **(train_kwargs or {})))
    return model, history


def _block_folds(split: np.ndarray, labels: np.ndarray, folds: int, *, block: int, patch: int,
                 seed: int) -> np.ndarray:
    """Fold ids of the labelled training blocks (see training.block_folds); an error before any training when
    there are fewer such blocks than folds."""
    fold_ids = training.block_folds(split, labels, folds, block=block, patch=patch, seed=seed,
                                    pool_id=grid.SPLITS["train"])
    if (fold_ids >= 0).sum() < folds:
        raise BadInputError(f"--folds {folds} needs at least {folds} labelled training blocks, the area has "
                            f"{int((fold_ids >= 0).sum())}; use fewer folds or a smaller --block")
    return fold_ids


def _cross_validate(ds: xr.Dataset, labels: np.ndarray, split: np.ndarray, fold_ids: np.ndarray,
                    val_windows: list, class_names: list[str], arch: Architecture, *, block: int, patch: int,
                    epochs: int, batch_size: int, seed: int) -> dict:
    """Blocked spatial k-fold over the training blocks: each fold's blocks are held out in turn, a CNN is
    trained on the other training blocks (band statistics from those blocks only, early stopping on the
    validation blocks as for the main model) and scored on the held-out blocks. The test blocks are never used.
    Patches never cross a block edge, so no training patch reaches into a held-out block."""
    folds = int(fold_ids.max()) + 1
    scores, rows = [], []
    for fold in range(folds):
        fold_split = training.fold_split(split, fold_ids, fold, block=block, val_id=grid.SPLITS["val"])
        image = grid.normalize(ds["reflectance"], **grid.band_statistics(ds["reflectance"],
                                                                         fold_split == training.CV_TRAIN)).data
        train_windows = training.patch_windows(fold_split, labels, training.CV_TRAIN, patch=patch, block=block,
                                               random_per_block=8, seed=seed + fold)
        held_windows = training.patch_windows(fold_split, labels, training.CV_HELD, patch=patch, block=block)
        train = _patches(image, labels, fold_split, training.CV_TRAIN, train_windows, patch, once=False)
        val = _patches(image, labels, fold_split, training.CV_VAL, val_windows, patch)
        held = _patches(image, labels, fold_split, training.CV_HELD, held_windows, patch)
        model, _ = fit_segmenter(arch, train, val, epochs=epochs, batch_size=batch_size, seed=seed + fold)
        proba, y = training.flatten_labelled(predict_proba(model, held[0]), held[1])
        scores.append(classification_metrics(y, proba.argmax(1), proba, class_names=class_names))
        rows.append({"fold": fold + 1, "blocks": int((fold_ids == fold).sum()), "pixels": int(len(y)),
                     **{k: scores[-1][k] for k in ("accuracy", "macro_f1", "cohen_kappa")}})
    return {"summary": insight.fold_summary(scores), "scheme": "blocked spatial k-fold over the training blocks",
            "folds": rows, "block": block, "block_folds": (fold_ids + 1).tolist(),
            "block_splits": np.asarray(split)[::block, ::block].tolist()}


def _scene_footprints(scenes_uri: str, crs: str) -> dict:
    """Each scene's footprint (the extent of its first band's raster) as a polygon in the grid CRS."""
    import rasterio
    from odc.geo.geom import box

    profile = read_parquet(scenes_uri)
    footprints = {}
    for scene, rows in profile.groupby("scene", sort=True):
        with rasterio.open(rows["path"].iloc[0]) as src:
            bounds, scene_crs = src.bounds, src.crs
        footprints[str(scene)] = box(*bounds, crs=scene_crs.to_wkt()).to_crs(crs).geom
    return footprints


def _test_scenes(ds: xr.Dataset, scenes_uri: str | None, windows: list, y_patches: np.ndarray,
                 patch: int) -> tuple[list[str], np.ndarray] | None:
    """Scene names and which scenes' footprints hold each labelled test pixel (rows in evaluation order)."""
    if not scenes_uri:
        return None
    footprints = _scene_footprints(scenes_uri, ds.attrs["crs"])
    rows, cols = training.labelled_positions(windows, y_patches, patch=patch)
    return list(footprints), training.scene_membership(footprints, ds["x"].values[cols], ds["y"].values[rows])


class SatelliteSpec:
    """The satellite domain for the model lifecycle: the blocks of the spatial split as the units (keyed by area,
    block size and position), a U-Net (or PixelFCN) fitted on patches of the training blocks with early stopping on the
    validation blocks, calibrated there, scored by macro F1 over the labelled pixels, each model on the mosaic
    normalized with its own training statistics."""

    def __init__(self, ds: xr.Dataset, stats: dict, image, labels: np.ndarray, split: np.ndarray, *,
                 settings: dict, run_dir: str, scenes_uri: str | None) -> None:
        self.ds, self.stats, self.image, self.labels, self.split = ds, stats, image, labels, split
        self.class_names, self.bands = json.loads(ds.attrs["class_names"]), json.loads(ds.attrs["bands"])
        self.block, self.settings = int(ds.attrs["block"]), settings
        self.run_dir, self.scenes_uri = run_dir, scenes_uri
        self.block_split = np.asarray(split)[::self.block, ::self.block]

    def keys(self) -> np.ndarray:
        rows, cols = np.indices(self.block_split.shape)
        return unit_keys(f"{self.ds.attrs['area']}|{self.block}|{r}|{c}" for r, c in zip(rows.ravel(), cols.ravel(),
                                                                                         strict=True))

    def mismatch(self, card: ModelCard) -> str | None:
        """The model's bands in its order, and its classes when the run has labels."""
        theirs = card.bands or []
        if theirs != self.bands:
            missing = [band for band in theirs if band not in self.bands]
            if missing:
                return (f"it reads bands {', '.join(theirs)}, and this run has no {', '.join(missing)}; use scenes "
                        f"with those bands (with --bands {','.join(theirs)} if you set --bands)")
            return f"it reads bands {', '.join(theirs)} (this run: {', '.join(self.bands)}); run with --bands " \
                   f"{','.join(theirs)}"
        if self.class_names and card.class_names != self.class_names:
            return f"it predicts {card.class_names}, the labels here are {self.class_names}"
        return None

    def patches(self, card: ModelCard | None, units: np.ndarray, split_id: int) -> tuple[np.ndarray, np.ndarray, list]:
        """(X, Y, windows): the patches of the blocks at ``units`` (indices into the block grid) that belong to
        ``split_id``, normalized for the model with ``card`` (None: this run's statistics). Training blocks get
        extra randomly placed patches, as the challenger is trained on."""
        chosen = np.zeros(self.block_split.size, dtype=bool)
        chosen[units] = True
        inside = chosen.reshape(self.block_split.shape).repeat(self.block, 0).repeat(self.block, 1)
        sub = np.where(inside[: self.split.shape[0], : self.split.shape[1]], self.split, 255)
        patch, train = self.settings["patch"], split_id == grid.SPLITS["train"]
        windows = training.patch_windows(sub, self.labels, split_id, patch=patch, block=self.block,
                                         random_per_block=8 if train else 0, seed=self.settings["seed"])
        image = self.image if card is None else _champion_image(self.ds, card, self.image, self.stats)
        return (*_patches(image, self.labels, sub, split_id, windows, patch, once=not train), windows)

    def split_patches(self, card: ModelCard | None, *, test: np.ndarray | None = None) -> tuple[dict, dict]:
        """(data, windows) of every split: {name: (X, Y)} and {name: windows}; ``test``: only those test blocks."""
        blocks, data, windows = self.block_split.ravel(), {}, {}
        for name, split_id in grid.SPLITS.items():
            chosen = test if name == "test" and test is not None else np.flatnonzero(blocks == split_id)
            *data[name], windows[name] = self.patches(card, chosen, split_id)
        return data, windows

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        x, y, _ = self.patches(card, units, grid.SPLITS["val"])
        proba, y = training.flatten_labelled(predict_proba(model, x), y)
        return classification_metrics(y, proba.argmax(1), proba, class_names=self.class_names)["macro_f1"]

    def fit(self) -> Fitted:
        s, labels, split, block, patch = self.settings, self.labels, self.split, self.block, self.settings["patch"]
        data, windows = self.split_patches(None)
        for name in ("train", "val"):
            if not (data[name][1] != labelling.UNLABELLED).any():
                raise BadInputError(f"the {name} blocks hold no labelled pixels; label more of the area or use a "
                                    "smaller --block")
        fold_ids = _block_folds(split, labels, s["folds"], block=block, patch=patch, seed=s["seed"]) \
            if s["folds"] > 1 else None
        def fit(values: dict) -> tuple[nn.Module, dict, Architecture]:
            model_kwargs, train_kwargs = split_values(values)
            arch = architecture(s["model"], len(self.bands), len(self.class_names), s["width"], model_kwargs)
            return (*fit_segmenter(arch, data["train"], data["val"], epochs=s["epochs"], batch_size=s["batch_size"],
                                    seed=s["seed"], train_kwargs=train_kwargs), arch)

        def validation_f1(values: dict) -> float:
            proba, y = training.flatten_labelled(predict_proba(fit(values)[0], data["val"][0]), data["val"][1])
            return classification_metrics(y, proba.argmax(1), proba)["macro_f1"]

        values, tuning = tuned(validation_f1, SEARCH, trials=s["tune"], seed=s["seed"], metric="validation macro F1")
        model, history, arch = fit(values)
        metrics, baselines, calibration = _test_metrics(
            model, data, self.class_names, s["seed"], self.run_dir, calibrate=s["calibrate"],
            mc_samples=s["mc_samples"], scenes=_test_scenes(self.ds, self.scenes_uri, windows["test"],
                                                            data["test"][1], patch))
        cv = None
        if fold_ids is not None:
            cv = _cross_validate(self.ds, labels, split, fold_ids, windows["val"], self.class_names, arch,
                                 block=block, patch=patch, epochs=s["epochs"], batch_size=s["batch_size"],
                                 seed=s["seed"])
            metrics["cv"] = cv.pop("summary")
        reference = sample_pixels(self.ds, s["seed"], region=split == grid.SPLITS["train"])
        buf = io.BytesIO()
        reference.to_parquet(buf, index=False)
        area = self.ds.attrs["area"]
        card = ModelCard(
            architecture=arch, bands=self.bands, tuning=tuning,
            class_names=self.class_names, metrics=metrics, calibration=calibration, history=history,
            normalization={k: self.stats[k] for k in ("mean", "std", "low", "high")},
            parameters={key: s[key] for key in ("epochs", "patch", "seed", "batch_size")} | {"block": block},
            data={"area": area, "train_patches": len(data["train"][0]),
                  "fingerprint": _fingerprint(area, self.stats, labels, split)})
        return Fitted(model, card, extra_files={"reference.parquet": buf.getvalue()},
                      outputs={"baselines": baselines, "cv": cv, "test": data["test"]})


def champion_metrics(spec: SatelliteSpec, decision: Decision, registry: ModelRegistry, keys: np.ndarray, *,
                      mc_samples: int) -> tuple[dict, dict]:
    """The champion and the pixel baseline on the labelled test blocks the champion never saw (no metrics on
    unlabelled input or other classes)."""
    card = decision.scoring
    if not (spec.labels != labelling.UNLABELLED).any() or spec.class_names != card.class_names:
        return {}, {}
    units = honest_test(decision, registry, keys, np.flatnonzero(spec.block_split.ravel() == grid.SPLITS["test"]))
    if len(units) == 0:
        return {"note": NO_HONEST_TEST}, {}
    data, windows = spec.split_patches(card, test=units)
    metrics, baselines, _ = _test_metrics(decision.model, data, card.class_names, spec.settings["seed"],
                                          spec.run_dir, mc_samples=mc_samples,
                                          scenes=_test_scenes(spec.ds, spec.scenes_uri, windows["test"],
                                                              data["test"][1], spec.settings["patch"]))
    return ({**metrics, "test_blocks": int(len(units))} if metrics else metrics), baselines


def _fingerprint(area: str, stats: dict, labels: np.ndarray, split: np.ndarray) -> str:
    """What the model was trained on: the grid, the training-area statistics and the labels per split."""
    digest = hashlib.sha256(f"{area}|{stats['mean']}|{stats['std']}".encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    digest.update(np.ascontiguousarray(split).tobytes())
    return digest.hexdigest()[:16]


def _champion_image(ds: xr.Dataset, card: ModelCard, image, stats: dict):
    """The mosaic normalized (lazily) with the champion's own training statistics."""
    if all(card.normalization.get(k) == stats[k] for k in ("mean", "std", "low", "high")):
        return image
    return normalized(ds, card.normalization).data


def _pixel_outputs(model: nn.Module, x: np.ndarray, y: np.ndarray, mc_samples: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per labelled pixel: (proba, class, MC-dropout uncertainty or None) from patch outputs."""
    if mc_samples and mc_samples > 1:
        mean, entropy = predict_proba_mc(model, x, samples=mc_samples, seed=seed, batch_size=32)
        proba, labels = training.flatten_labelled(mean, y)
        return proba, labels, entropy.reshape(-1)[y.reshape(-1) != labelling.UNLABELLED]
    proba, labels = training.flatten_labelled(predict_proba(model, x), y)
    return proba, labels, None


def _test_metrics(model: nn.Module, data: dict, class_names: list[str], seed: int, run_dir: str, *,
                  calibrate: str | None = None, mc_samples: int = 0,
                  scenes: tuple[list[str], np.ndarray] | None = None) -> tuple[dict, dict, dict | None]:
    """The model (calibrated on the validation blocks if asked) and the per-pixel baseline on exactly the same
    labelled test pixels; writes the evaluation table. With ``scenes`` (names, pixel-by-scene membership),
    metrics per scene over all test pixels, and each sampled pixel's scenes in the table."""
    x_test, y_test = data["test"]
    if not (y_test != labelling.UNLABELLED).any():
        return {}, {}, None
    proba, y, uncertainty = _pixel_outputs(model, x_test, y_test, mc_samples, seed)
    val_proba, val_y, _ = _pixel_outputs(model, *data["val"], mc_samples, seed)
    metrics, evaluation, calibration = insight.analyse_predictions(
        val_y, val_proba, y, proba, class_names, calibrate=calibrate, uncertainty=uncertainty)
    sample = evaluation.sample(min(len(evaluation), 50_000), random_state=0)
    if scenes is not None:
        names, member = np.asarray(scenes[0], dtype=object), scenes[1]
        pixel, scene = np.nonzero(member)
        table = insight.slice_metrics(y[pixel], evaluation["y_pred"].to_numpy()[pixel], names[scene])
        per_scene = {row.pop("slice"): row for row in table.to_dict("records")}
        metrics["per_scene"] = {str(n): per_scene.get(n, {"count": 0, "accuracy": None, "macro_f1": None})
                                for n in names}
        sample["scene"] = [names[member[i]].tolist() for i in sample.index]
    write_parquet(sample, SatelliteFiles(run_dir).evaluation)
    x_train, y_train = data["train"]
    keep = y_train.reshape(-1) != labelling.UNLABELLED
    xt = x_train.transpose(0, 2, 3, 1).reshape(-1, x_train.shape[1])[keep]
    yt = y_train.reshape(-1)[keep]
    pick = np.random.default_rng(seed).permutation(len(yt))[:20_000]
    baseline = training.fit_pixel_baseline(xt[pick], yt[pick], seed=seed)
    xs = x_test.transpose(0, 2, 3, 1).reshape(-1, x_test.shape[1])[y_test.reshape(-1) != labelling.UNLABELLED]
    bp = training.baseline_proba(baseline, xs, len(class_names))
    baselines = {"pixel_logreg": classification_metrics(y, bp.argmax(1), bp, class_names=class_names)}
    return metrics, baselines, calibration


def explain(model: nn.Module, test: tuple, bands: list[str], run_dir: str, *, seed: int, n: int = 6) -> None:
    """Grad-CAM of the last feature convolution for the centre pixel of a few labelled test chips, and the
    penultimate-layer embeddings of test pixels."""
    x, y = test
    centre = x.shape[-1] // 2
    chips = np.flatnonzero(y[:, centre, centre] != labelling.UNLABELLED)
    if not len(chips):
        return
    pick = np.random.default_rng(seed).permutation(chips)[:n]
    model.eval()
    with torch.no_grad():
        pred = model(torch.as_tensor(x[pick])).argmax(1)[:, centre, centre].numpy()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    cam = insight.grad_cam(lambda t: model(t)[:, :, centre, centre], convs[-2], torch.as_tensor(x[pick]), pred)
    rgb = [bands.index(b) for b in ("B04", "B03", "B02") if b in bands] or list(range(min(3, len(bands))))
    buf = io.BytesIO()
    np.savez_compressed(buf, chips=x[pick][:, (rgb * 3)[:3]], cam=cam, y_true=y[pick, centre, centre],
                        y_pred=pred)
    files = SatelliteFiles(run_dir)
    write_bytes(buf.getvalue(), files.explanation_chips)
    features = insight.penultimate_features(model, x[chips[:64]], batch_size=16)
    labels = y[chips[:64]]
    keep = labels.reshape(-1) != labelling.UNLABELLED
    flat = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1])[keep]
    with torch.no_grad():
        pixel_pred = model(torch.as_tensor(x[chips[:64]])).argmax(1).numpy().reshape(-1)[keep]
    table = insight.embeddings_table(flat, labels.reshape(-1)[keep], pixel_pred, seed=seed)
    write_parquet(table, files.embeddings)


def sample_pixels(ds: xr.Dataset, seed: int, *, region: np.ndarray | None = None, n: int = 5000) -> pd.DataFrame:
    """Reflectance of up to ``n`` random valid pixels (inside ``region`` if given), read point by point."""
    shape = ds.sizes["y"], ds.sizes["x"]
    if region is not None:
        rows, cols = np.nonzero(region)
    else:
        rows, cols = np.unravel_index(np.arange(shape[0] * shape[1]), shape)
    pick = np.random.default_rng(seed).permutation(rows.size)[: 4 * n]
    points = ds["reflectance"].isel(y=xr.DataArray(rows[pick], dims="p"), x=xr.DataArray(cols[pick], dims="p"))
    values = points.transpose("p", "band").values
    values = values[np.isfinite(values).all(axis=1)][:n]
    return pd.DataFrame(values, columns=json.loads(ds.attrs["bands"]))

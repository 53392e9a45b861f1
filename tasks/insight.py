"""How far to trust each prediction and why it was made: calibration, operating thresholds, uncertainty,
error analysis, embeddings and attributions. Plain functions on arrays and models; no I/O."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from sklearn import metrics as skm
from sklearn.decomposition import PCA
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from torch import nn

from models.train import predict_proba, predict_proba_mc
from tasks.metrics import classification_metrics

CALIBRATION_METHODS = ("platt", "isotonic")
_EPS = 1e-6


def reliability(y: np.ndarray, proba: np.ndarray, *, n_bins: int = 10) -> pd.DataFrame:
    """Top-label reliability: per confidence bin, the mean confidence, the accuracy and the count."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == np.asarray(y)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = which == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "count": int(inside.sum()),
                     "confidence": float(confidence[inside].mean()) if inside.any() else np.nan,
                     "accuracy": float(correct[inside].mean()) if inside.any() else np.nan})
    return pd.DataFrame(rows)


def expected_calibration_error(y: np.ndarray, proba: np.ndarray, *, n_bins: int = 10) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over the reliability bins."""
    table = reliability(y, proba, n_bins=n_bins)
    used = table[table["count"] > 0]
    if used.empty:
        return float("nan")
    weights = used["count"] / used["count"].sum()
    return float((weights * (used["accuracy"] - used["confidence"]).abs()).sum())


def fit_calibration(proba: np.ndarray, y: np.ndarray, method: str) -> dict:
    """One-vs-rest Platt scaling (a logistic curve on each class's log-odds) or isotonic regression, fitted on
    validation outputs; returned as plain numbers so it travels in a model card."""
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration {method!r}; choose {' or '.join(CALIBRATION_METHODS)}")
    y = np.asarray(y)
    classes = []
    for c in range(proba.shape[1]):
        target = (y == c).astype(int)
        if target.min() == target.max():
            classes.append(None)
        elif method == "platt":
            fitted = LogisticRegression(C=1e4).fit(_logit(proba[:, c])[:, None], target)
            classes.append({"a": float(fitted.coef_[0, 0]), "b": float(fitted.intercept_[0])})
        else:
            fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, c], target)
            classes.append({"x": fitted.X_thresholds_.tolist(), "y": fitted.y_thresholds_.tolist()})
    return {"method": method, "classes": classes}


def apply_calibration(calibration: dict | None, proba: np.ndarray) -> np.ndarray:
    """Calibrated probabilities (rows renormalised to sum to 1); unchanged when ``calibration`` is None."""
    if not calibration:
        return proba
    out = np.array(proba, dtype=float)
    for c, params in enumerate(calibration["classes"]):
        if params is None:
            continue
        if calibration["method"] == "platt":
            out[:, c] = 1 / (1 + np.exp(-(params["a"] * _logit(proba[:, c]) + params["b"])))
        else:
            out[:, c] = np.interp(proba[:, c], params["x"], params["y"])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1), proba)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def operating_point(y_val: np.ndarray, proba_val: np.ndarray, class_names: list[str]) -> dict:
    """The decision rule and why: for two classes, the threshold on the second class's probability that
    maximises F1 on the validation split; for more, the most probable class."""
    if len(class_names) != 2 or len(np.unique(y_val)) < 2:
        return {"rule": "argmax", "threshold": None,
                "reason": f"{len(class_names)} classes: predict the most probable one (a threshold per class would "
                          "trade one class's recall for another's)"}
    precision, recall, thresholds = skm.precision_recall_curve(np.asarray(y_val) == 1, proba_val[:, 1])
    f1 = 2 * precision * recall / np.maximum(precision + recall, _EPS)
    best = int(np.argmax(f1[:-1]))
    at_half = skm.f1_score(np.asarray(y_val) == 1, proba_val[:, 1] >= 0.5, zero_division=0)
    positive = str(class_names[1])
    return {"rule": "threshold", "threshold": float(thresholds[best]), "positive": positive,
            "reason": f"maximises F1 of '{positive}' on the validation split "
                      f"({f1[best]:.3f} there, {at_half:.3f} at 0.5)"}


def decide(point: dict, proba: np.ndarray) -> np.ndarray:
    """Class indices under an operating point from :func:`operating_point`."""
    if point["rule"] == "threshold":
        return (proba[:, 1] >= point["threshold"]).astype(np.int64)
    return proba.argmax(axis=1)


def accuracy_by_uncertainty(y: np.ndarray, y_pred: np.ndarray, uncertainty: np.ndarray, *,
                            bins: int = 5) -> pd.DataFrame:
    """Accuracy in equal-count bins of uncertainty, least uncertain first."""
    order = np.argsort(uncertainty, kind="stable")
    rows = []
    for b, part in enumerate(np.array_split(order, min(bins, max(len(order), 1)))):
        if len(part) == 0:
            continue
        rows.append({"bin": b + 1, "uncertainty_from": float(uncertainty[part].min()),
                     "uncertainty_to": float(uncertainty[part].max()), "count": int(len(part)),
                     "accuracy": float((np.asarray(y)[part] == np.asarray(y_pred)[part]).mean())})
    return pd.DataFrame(rows)


def uncertainty_summary(y: np.ndarray, y_pred: np.ndarray, uncertainty: np.ndarray) -> dict:
    """Do high-uncertainty predictions hold the mistakes? AUROC of uncertainty as a detector of errors and
    accuracy in the lowest and highest fifth."""
    wrong = np.asarray(y) != np.asarray(y_pred)
    table = accuracy_by_uncertainty(y, y_pred, uncertainty)
    auroc = float(skm.roc_auc_score(wrong, uncertainty)) if 0 < wrong.sum() < len(wrong) else None
    return {"error_detection_auroc": auroc, "accuracy_least_uncertain": float(table["accuracy"].iloc[0]),
            "accuracy_most_uncertain": float(table["accuracy"].iloc[-1])}


def confusion_pairs(y: np.ndarray, y_pred: np.ndarray, class_names: list[str], *, top: int = 6) -> pd.DataFrame:
    """The (true, predicted) pairs that make up most of the mistakes."""
    cm = skm.confusion_matrix(y, y_pred, labels=list(range(len(class_names))))
    np.fill_diagonal(cm, 0)
    errors = max(int(cm.sum()), 1)
    pairs = [(int(cm[i, j]), i, j) for i in range(len(cm)) for j in range(len(cm)) if cm[i, j]]
    pairs.sort(reverse=True)
    return pd.DataFrame([{"true": class_names[i], "predicted": class_names[j], "count": n,
                          "share_of_errors": n / errors} for n, i, j in pairs[:top]],
                        columns=["true", "predicted", "count", "share_of_errors"])


def slice_metrics(y: np.ndarray, y_pred: np.ndarray, slices: np.ndarray | pd.Series) -> pd.DataFrame:
    """Accuracy and macro F1 per slice (scene, length bin ...), in slice order (an ordered categorical's order,
    e.g. length bins from ``pd.cut``; else sorted). The F1 averages the classes
    present in the slice, so a class predicted there but absent does not count as a zero. A slice value that is
    a list puts the sample in every slice it names (a pixel where two scenes overlap), and in none when empty."""
    frame = pd.DataFrame({"y": np.asarray(y), "pred": np.asarray(y_pred),
                          "slice": slices.reset_index(drop=True) if isinstance(slices, pd.Series) else list(slices)})
    if frame["slice"].map(lambda v: isinstance(v, list | tuple | np.ndarray)).any():
        frame = frame.explode("slice").dropna(subset=["slice"])
    rows = [{"slice": name, "count": len(part), "accuracy": float((part["y"] == part["pred"]).mean()),
             "macro_f1": float(skm.f1_score(part["y"], part["pred"], labels=np.unique(part["y"]), average="macro",
                                            zero_division=0))}
            for name, part in frame.groupby("slice", observed=True, sort=True)]
    return pd.DataFrame(rows, columns=["slice", "count", "accuracy", "macro_f1"])


def confident_mistakes(y: np.ndarray, proba: np.ndarray, *, n: int = 8) -> np.ndarray:
    """Indices of wrong predictions, most confident first."""
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != np.asarray(y))
    return wrong[np.argsort(-proba[wrong].max(axis=1), kind="stable")][:n]


def last_layer(model: nn.Module) -> nn.Module:
    """The classifier's output layer (the last Linear or Conv in registration order)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Linear or Conv layer")
    return layers[-1]


def penultimate_features(model: nn.Module, x: np.ndarray | torch.Tensor, *, batch_size: int = 256) -> np.ndarray:
    """What the output layer reads (the penultimate representation), in eval mode, batch by batch."""
    model.eval()
    device = next(model.parameters()).device
    captured: list[np.ndarray] = []
    hook = last_layer(model).register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0].cpu().numpy()))
    x = torch.as_tensor(x)
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                model(x[start:start + batch_size].to(device))
    finally:
        hook.remove()
    return np.concatenate(captured) if captured else np.empty((0,))


def embed_2d(features: np.ndarray, *, seed: int = 0, tsne_max: int = 800) -> pd.DataFrame:
    """PCA and t-SNE coordinates of (n, d) features; t-SNE on at most ``tsne_max`` rows (NaN elsewhere), 500
    iterations. A picture of the classes' clusters needs no more: 1,500 rows and 1,000 iterations took 3 to 4 s
    of every classification run on 2 cores, 800 and 500 take about 1 s."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    out = pd.DataFrame(index=range(len(features)), columns=["pca_1", "pca_2", "tsne_1", "tsne_2"], dtype=float)
    if len(features) < 3:
        return out
    components = min(2, features.shape[1])
    out.iloc[:, :components] = PCA(n_components=components, random_state=seed).fit_transform(features)
    pick = np.random.default_rng(seed).permutation(len(features))[:tsne_max]
    if len(np.unique(features[pick], axis=0)) > 5:  # Barnes-Hut t-SNE crashes the process on all-equal points
        tsne = TSNE(n_components=2, perplexity=min(30.0, (len(pick) - 1) / 3), init="pca", max_iter=500,
                    random_state=seed)
        out.iloc[pick, 2:] = tsne.fit_transform(features[pick])
    return out


def integrated_gradients(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: np.ndarray, *,
                         baseline: torch.Tensor | float = 0.0, steps: int = 32) -> np.ndarray:
    """Integrated gradients of the target class's output with respect to the input (captum), same shape as x.

    For a linear model f(x) = w.x + b and a zero baseline this is w * x exactly."""
    from captum.attr import IntegratedGradients

    attributions = IntegratedGradients(forward).attribute(
        x.detach().float(), baselines=baseline, target=torch.as_tensor(target), n_steps=steps)
    return attributions.detach().cpu().numpy()


def embedding_attributions(model: nn.Module, embedding: nn.Module, ids: torch.Tensor, target: np.ndarray, *,
                           steps: int = 32) -> np.ndarray:
    """Per-token importance (n, length): layer integrated gradients through the embedding, from an all-padding
    baseline, summed over the embedding dimensions."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    attributions = LayerIntegratedGradients(model, embedding).attribute(
        ids, baselines=torch.zeros_like(ids), target=torch.as_tensor(target), n_steps=steps)
    return attributions.sum(dim=-1).detach().cpu().numpy()


def grad_cam(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, x: torch.Tensor,
             target: np.ndarray) -> np.ndarray:
    """Grad-CAM of ``layer`` for the target class, upsampled to the input's height and width, (n, h, w)."""
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(forward, layer).attribute(x.float(), target=torch.as_tensor(target), relu_attributions=True)
    return LayerAttribution.interpolate(cam, tuple(x.shape[-2:])).squeeze(1).detach().cpu().numpy()


def score_proba(model: nn.Module, x: np.ndarray | torch.Tensor, *, mc_samples: int = 0, calibration: dict | None = None,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (MC-dropout means when ``mc_samples`` > 1, then calibrated when a calibration is given)
    and the per-prediction uncertainty (predictive entropy; None without MC dropout)."""
    if mc_samples and mc_samples > 1:
        proba, uncertainty = predict_proba_mc(model, x, samples=mc_samples, seed=seed)
    else:
        proba, uncertainty = predict_proba(model, x), None
    if calibration and len(proba):
        proba = apply_calibration(calibration, proba)
    return proba, uncertainty


def embeddings_table(features: np.ndarray, y: np.ndarray, y_pred: np.ndarray, *, seed: int = 0,
                     max_rows: int = 2000) -> pd.DataFrame:
    """2D PCA and t-SNE of up to ``max_rows`` samples' penultimate features, with their true and predicted class."""
    pick = np.sort(np.random.default_rng(seed).permutation(len(features))[:max_rows])
    table = embed_2d(features[pick], seed=seed)
    table["y_true"] = np.asarray(y)[pick]
    table["y_pred"] = np.asarray(y_pred)[pick]
    return table


def choose_deep_share(y: np.ndarray, proba_by_share: dict[float, np.ndarray], *, resamples: int = 1000,
                      seed: int = 0) -> tuple[float, dict[str, dict[str, float]]]:
    """How much of a hybrid's deep part to keep, chosen on validation: of the shares whose macro F1 gain over none
    (share 0, the linear part alone) is clear of the noise (more than twice its paired-bootstrap standard error),
    the best; share 0 when none is. Returns it and every share's macro F1, gain and standard error.

    On a few hundred validation records a gain of one or two records is chance, and a share chosen by it loses
    on the test records as often as it wins (the market forecaster keeps its share of the forecast by a like
    rule)."""
    y = np.asarray(y)
    weights = np.random.default_rng(seed).multinomial(len(y), np.full(len(y), 1 / len(y)),
                                                      size=resamples).astype(np.int32)
    classes = np.unique(y)

    def macro_f1(pred: np.ndarray) -> np.ndarray:
        """Macro F1 over the classes of ``y`` of the full set (first) and every resample."""
        w = np.vstack([np.ones(len(y)), weights])
        f1 = [2 * (w @ ((y == c) & (pred == c))) / np.maximum(w @ ((y == c).astype(float) + (pred == c)), 1e-12)
              for c in classes]
        return np.mean(f1, axis=0)

    f1 = {share: macro_f1(np.asarray(proba).argmax(1)) for share, proba in proba_by_share.items()}
    scores = {}
    for share, values in f1.items():
        gain = values - f1[0.0]
        scores[share] = {"macro_f1": float(values[0]), "gain": float(gain[0]), "se": float(gain[1:].std(ddof=1))}
    clear = [s for s in scores if s == 0.0 or scores[s]["gain"] > 2 * scores[s]["se"]]
    best = max(clear, key=lambda s: (round(scores[s]["macro_f1"], 6), -s))
    return best, {str(s): v for s, v in scores.items()}


def set_deep_share(model: nn.Module, share: torch.Tensor, shares: tuple[float, ...], x_val: np.ndarray,
                   y_val: np.ndarray, *, seed: int = 0) -> tuple[float, dict[str, dict[str, float]]]:
    """Try each of ``shares`` in the hybrid ``model``'s ``share`` buffer on the validation inputs and keep the one
    :func:`choose_deep_share` picks; return it and every share's scores."""
    probas = {}
    for value in shares:
        share.fill_(value)
        probas[value] = predict_proba(model, x_val)
    best, scores = choose_deep_share(y_val, probas, seed=seed)
    share.fill_(best)
    return best, scores


def cross_validate(fit_predict: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray], y: np.ndarray,
                   folds: int, *, class_names: list[str], seed: int = 0, inner_val: float = 0.15) -> dict:
    """Stratified k-fold: each fold's training part is split again (stratified, ``inner_val``) so the model
    early-stops on records that are neither fitted nor scored; ``fit_predict(fit_idx, stop_idx, held_idx, fold)``
    returns the held-out fold's probabilities. The spread of accuracy, macro F1 and Cohen's kappa over the folds,
    not one number."""
    from tasks.splits import kfold_indices, stratified_holdout

    scores = []
    for fold, (train, held) in enumerate(kfold_indices(y, folds, seed=seed)):
        stop = train[stratified_holdout(y[train], inner_val, seed + fold)]
        proba = fit_predict(np.setdiff1d(train, stop), stop, held, fold)
        scores.append(classification_metrics(y[held], proba.argmax(1), proba, class_names=class_names))
    return fold_summary(scores)


def fold_summary(scores: list[dict]) -> dict:
    """Mean, standard deviation and per-fold values of accuracy, macro F1 and Cohen's kappa, from one
    :func:`~tasks.metrics.classification_metrics` dict per fold (any fold scheme: stratified, spatial blocks)."""
    summary = {}
    for key in ("accuracy", "macro_f1", "cohen_kappa"):
        values = np.array([s[key] for s in scores])
        summary[key] = {"mean": float(values.mean()), "std": float(values.std()), "folds": values.tolist()}
    return summary


def analyse_predictions(y_val: np.ndarray, proba_val: np.ndarray, y_test: np.ndarray, proba_test: np.ndarray,
                        class_names: list[str], *, calibrate: str | None = None,
                        uncertainty: np.ndarray | None = None) -> tuple[dict, pd.DataFrame, dict | None]:
    """Test metrics (on calibrated probabilities when ``calibrate``), with ECE before and after, the operating
    point chosen on validation and the uncertainty summary; and the per-prediction evaluation table
    (y_true, y_pred, p_<i>, raw_p_<i> when calibrated, uncertainty)."""
    calibration = fit_calibration(proba_val, y_val, calibrate) if calibrate else None
    used_test = apply_calibration(calibration, proba_test)
    used_val = apply_calibration(calibration, proba_val)
    y_pred = used_test.argmax(axis=1)
    metrics = classification_metrics(y_test, y_pred, used_test, class_names=class_names)
    metrics["ece"] = expected_calibration_error(y_test, proba_test)
    if calibration:
        metrics["ece_calibrated"] = expected_calibration_error(y_test, used_test)
        metrics["calibration"] = calibrate
    point = operating_point(y_val, used_val, class_names)
    decided = decide(point, used_test)
    point["test"] = {"accuracy": float(np.mean(decided == y_test)),
                     "macro_f1": float(skm.f1_score(y_test, decided, average="macro", zero_division=0))}
    metrics["operating_point"] = point
    table = prediction_table(y_test, used_test)
    if calibration:
        for i in range(proba_test.shape[1]):
            table[f"raw_p_{i}"] = proba_test[:, i]
    if uncertainty is not None:
        table["uncertainty"] = uncertainty
        metrics["uncertainty"] = uncertainty_summary(y_test, y_pred, uncertainty)
    return metrics, table, calibration


def prediction_table(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """One row per prediction: y_true, y_pred (the most probable class) and p_<i> per class."""
    table = pd.DataFrame(proba, columns=[f"p_{i}" for i in range(proba.shape[1])])
    table.insert(0, "y_pred", proba.argmax(axis=1))
    table.insert(0, "y_true", np.asarray(y))
    return table

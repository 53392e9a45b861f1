"""The genome classifier's lifecycle: what ``train_sequence_classifier`` trains, tests, explains and compares with.

``GenomeSpec`` tells models/lifecycle.py how to fit a CNN on the stratified split's training records, score a
champion on the test records and fit the two logistic-regression baselines on the same records; the helpers
around it evaluate, cross-validate and explain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from models.architectures import build
from models.card import Architecture, ModelCard
from models.lifecycle import NO_HONEST_TEST, Decision, Fitted, honest_test
from models.registry import ModelRegistry
from models.train import CNNPart, TrainConfig, predict_proba, seed_everything, train_model
from models.tuning import split_values, tuned
from tasks import insight
from tasks.genome import encode, training
from tasks.genome.files import GenomeFiles
from tasks.metrics import classification_metrics
from tasks.store import write_parquet

MIN_BATCHES = 20  # per epoch: a hundred records still get enough updates (400 at the default 20 epochs)


def model_inputs(codes: np.ndarray, counts: np.ndarray, arch: Architecture, k: int) -> np.ndarray:
    encoding = arch.kwargs.get("encoding", "counts")
    if arch.name == "KmerCNN2D" or encoding == "counts":
        return counts.astype(np.float32)
    return training.model_input(codes, encoding=encoding, k=k)


ARCHITECTURES = {"kmer2d": "KmerCNN2D", "poscnn": "PosCNN1D", "cnn1d": "SeqCNN1D"}
# --tune: the arguments every architecture of the domain takes
SEARCH = {"lr": ("log", 3e-4, 3e-3), "channels": ("choice", [32, 64, 128]), "dropout": ("float", 0.1, 0.5)}


def _new_model(architecture: str, n_classes: int, *, encoding: str, k: int, length: int,
               tuned_kwargs: dict | None = None) -> tuple[nn.Module, Architecture]:
    if architecture == "kmer2d":
        kwargs = {"n_classes": n_classes, "k": k}
    elif architecture == "poscnn":
        kwargs = {"n_classes": n_classes, "encoding": encoding, "vocab_size": encode.vocabulary_size(k),
                  "length": length - k + 1 if encoding == "kmer" else length, "wide": encoding == "onehot"}
    else:
        kwargs = {"n_classes": n_classes, "encoding": encoding, "vocab_size": encode.vocabulary_size(k)}
    arch = Architecture(name=ARCHITECTURES[architecture], kwargs=kwargs | (tuned_kwargs or {}))
    return build(arch), arch


def _fit(architecture, class_names, x_codes, counts, y, train, val, *, encoding, k, epochs, seed, augment_rc,
         values=None):
    """(model, architecture, history) trained on ``train`` with early stopping on ``val``; ``values`` (from
    --tune) set network arguments and the learning rate."""
    seed_everything(seed)
    model_kwargs, train_kwargs = split_values(values)
    model, arch = _new_model(architecture, len(class_names), encoding=encoding, k=k, length=x_codes.shape[1],
                             tuned_kwargs=model_kwargs)
    tr_codes, tr_y = x_codes[train], y[train]
    tr_counts = counts[train]
    if augment_rc:
        tr_codes, tr_y = training.with_reverse_complements(tr_codes, tr_y)
        rc_tokens = encode.kmer_tokens(tr_codes[len(train):], k)
        tr_counts = np.concatenate([tr_counts, encode.kmer_counts(rc_tokens, k)])
    xt = model_inputs(tr_codes, tr_counts, arch, k)
    xv = model_inputs(x_codes[val], counts[val], arch, k)
    wide = getattr(model, "wide", None) is not None
    if wide:
        training.fit_wide_part(model, x_codes[train], y[train], seed=seed)
    history = train_model(CNNPart(model) if wide else model, (torch.as_tensor(xt), torch.as_tensor(tr_y)),
                          (torch.as_tensor(xv), torch.as_tensor(y[val])),
                          config=TrainConfig(epochs=epochs, seed=seed, batch_size=64, min_steps=MIN_BATCHES * epochs,
                                             **train_kwargs))
    if wide:
        mix, scores = insight.set_deep_share(model, model.mix, training.MIXES, xv, y[val], seed=seed)
        history |= {"mix_val": scores, "mix": mix}
    return model, arch, history


class GenomeSpec:
    """The genome domain for the model lifecycle: records as base codes and k-mer counts, a challenger CNN fitted
    on the train records with early stopping on validation, calibrated on validation, scored by macro F1."""

    def __init__(self, codes: np.ndarray, counts: np.ndarray, y: np.ndarray, idx: dict, class_names: list[str] | None,
                 *, params: dict, architecture: str, calibrate: str | None, mc_samples: int, seed: int) -> None:
        self.codes, self.counts, self.y, self.idx, self.class_names = codes, counts, y, idx, class_names
        self.params, self.architecture = params, architecture
        self.calibrate, self.mc_samples, self.seed = calibrate, mc_samples, seed

    def mismatch(self, card: ModelCard) -> str | None:
        """Unlabelled records are re-encoded with the model's own k and length when scored; labelled ones are
        compared on this run's encoding, so classes, k and length must match."""
        if self.class_names is None:
            return None
        if card.class_names != self.class_names:
            return f"it predicts {card.class_names}, these records are labelled {self.class_names}"
        theirs = {key: card.parameters.get(key) for key in ("k", "length")}
        if theirs != {key: self.params[key] for key in theirs}:
            options = " ".join(f"--{key} {value}" for key, value in theirs.items())
            ours = " ".join(f"--{key} {self.params[key]}" for key in theirs)
            return f"it reads sequences encoded with {options} (this run: {ours}); run with {options}"
        return None

    def proba(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> np.ndarray:
        x = model_inputs(self.codes[units], self.counts[units], card.architecture, self.params["k"])
        return insight.score_proba(model, x, calibration=card.calibration)[0]

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        proba = self.proba(model, card, units)
        return classification_metrics(self.y[units], proba.argmax(1), proba, class_names=self.class_names)["macro_f1"]

    def _fit(self, values: dict | None = None) -> tuple[nn.Module, Architecture, dict]:
        p, idx = self.params, self.idx
        return _fit(self.architecture, self.class_names, self.codes, self.counts, self.y, idx["train"], idx["val"],
                    encoding=p["encoding"], k=p["k"], epochs=p["epochs"], seed=self.seed, augment_rc=p["augment_rc"],
                    values=values)

    def _validation_f1(self, values: dict) -> float:
        model, arch, _ = self._fit(values)
        val = self.idx["val"]
        proba = predict_proba(model, model_inputs(self.codes[val], self.counts[val], arch, self.params["k"]))
        return classification_metrics(self.y[val], proba.argmax(1), proba)["macro_f1"]

    def fit(self) -> Fitted:
        p, idx = self.params, self.idx
        values, tuning = tuned(self._validation_f1, SEARCH, trials=p["tune"], seed=self.seed,
                               metric="validation macro F1")
        model, arch, history = self._fit(values)
        enc = arch.kwargs.get("encoding", "counts")
        inputs = {s: model_inputs(self.codes[idx[s]], self.counts[idx[s]], arch, p["k"]) for s in ("val", "test")}
        val_proba, _ = insight.score_proba(model, inputs["val"], mc_samples=self.mc_samples, seed=self.seed)
        test_proba, uncertainty = insight.score_proba(model, inputs["test"], mc_samples=self.mc_samples,
                                                      seed=self.seed)
        metrics, evaluation, calibration = insight.analyse_predictions(
            self.y[idx["val"]], val_proba, self.y[idx["test"]], test_proba, self.class_names,
            calibrate=self.calibrate, uncertainty=uncertainty)
        card = ModelCard(architecture=arch, class_names=self.class_names, metrics=metrics, history=history,
                         calibration=calibration, parameters={**p, "encoding": enc, "seed": self.seed},
                         tuning=tuning,
                         data={"records": int(len(self.y)), "fingerprint": _fingerprint(self.codes, self.y)})
        return Fitted(model, card, outputs={"evaluation": evaluation, "x_test": inputs["test"]})


def evaluate(decision: Decision, spec: GenomeSpec, registry: ModelRegistry, keys: np.ndarray, codes: np.ndarray,
              counts: np.ndarray, y: np.ndarray, idx: dict, ds: xr.Dataset, run_dir: str, *,
              seed: int) -> tuple[dict, dict]:
    """Metrics of the run: the challenger's on its test records when one was trained, else the champion's on the
    test records it never saw; the baselines on the same records; the evaluation table and explanations."""
    if decision.fitted is not None:
        model, card, test, outputs = decision.fitted.model, decision.trained, idx["test"], decision.fitted.outputs
        metrics, evaluation, x_test = dict(card.metrics), outputs["evaluation"], outputs["x_test"]
    else:
        model, card = decision.model, decision.scoring
        test = honest_test(decision, registry, keys, idx["test"])
        if len(test) == 0:
            return {"note": NO_HONEST_TEST}, {}
        proba = spec.proba(model, card, test)
        metrics = classification_metrics(y[test], proba.argmax(1), proba, class_names=card.class_names)
        evaluation = insight.prediction_table(y[test], proba)
        x_test = model_inputs(codes[test], counts[test], card.architecture, card.parameters["k"])
    metrics["test_records"] = int(len(test))
    baselines = _baselines(codes, counts, y, {**idx, "test": test}, card.class_names, seed)
    evaluation.insert(0, "id", np.array(ds["id"].values.tolist())[test])
    evaluation["length_bin"] = pd.cut(ds["length"].values[test], [0, 100, 150, 200, 250, 500, np.inf],
                                      labels=["<=100", "101-150", "151-200", "201-250", "251-500", ">500"])
    evaluation["sequence"] = training.code_strings(codes[test])
    write_parquet(evaluation, GenomeFiles(run_dir).evaluation)
    _explain(model, card.architecture, x_test, evaluation, card.parameters["k"], run_dir, seed=seed)
    return metrics, baselines


def _fingerprint(codes: np.ndarray, y: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(codes).tobytes())
    digest.update(y.tobytes())
    return digest.hexdigest()[:16]


def _baselines(codes, counts, y, idx, class_names, seed) -> dict:
    out = {}
    for name, features in (("onehot_logreg", training.onehot_features), ("kmer_counts_logreg",
                                                                         training.count_features)):
        source = codes if name.startswith("onehot") else counts
        fitted = training.fit_logreg(features(source[idx["train"]]), y[idx["train"]], seed=seed)
        proba = np.zeros((len(idx["test"]), len(class_names)))
        proba[:, fitted.classes_] = fitted.predict_proba(features(source[idx["test"]]))
        out[name] = classification_metrics(y[idx["test"]], proba.argmax(1), proba, class_names=class_names)
    return out


def cross_validate(architecture, class_names, codes, counts, y, idx, folds, *, encoding, k, epochs, seed) -> dict:
    """Stratified k-fold over the train and validation records."""
    pool = np.concatenate([idx["train"], idx["val"]])

    def fit_predict(fit: np.ndarray, stop: np.ndarray, held: np.ndarray, fold: int) -> np.ndarray:
        model, arch, _ = _fit(architecture, class_names, codes, counts, y, pool[fit], pool[stop], encoding=encoding,
                              k=k, epochs=epochs, seed=seed + fold, augment_rc=False)
        return predict_proba(model, model_inputs(codes[pool[held]], counts[pool[held]], arch, k))

    return insight.cross_validate(fit_predict, y[pool], folds, class_names=class_names, seed=seed)


def _explain(model: nn.Module, arch: Architecture, x_test: np.ndarray, evaluation: pd.DataFrame, k: int,
             run_dir: str, *, seed: int, per_class: int = 2) -> None:
    """Per-base importance (integrated gradients) for a few right predictions per class and the most confident
    mistakes, and the penultimate-layer embeddings of the test records."""
    y, y_pred = evaluation["y_true"].to_numpy(), evaluation["y_pred"].to_numpy()
    proba = evaluation[[c for c in evaluation.columns if c.startswith("p_")]].to_numpy()
    rng = np.random.default_rng(seed)
    right = [rng.permutation(np.flatnonzero((y == c) & (y_pred == c)))[:per_class] for c in np.unique(y)]
    pick = np.concatenate([*right, insight.confident_mistakes(y, proba, n=per_class)]).astype(int)
    encoding = arch.kwargs.get("encoding")
    files = GenomeFiles(run_dir)
    if len(pick) and arch.name in ("PosCNN1D", "SeqCNN1D"):
        x = torch.as_tensor(x_test[pick])
        if encoding == "kmer":
            tokens = insight.embedding_attributions(model, model.embed, x, y_pred[pick])
            importance = training.per_base_importance(tokens, k)
        else:
            importance = insight.integrated_gradients(model, x, y_pred[pick]).sum(axis=-1)
        rows = [{"id": evaluation["id"].iloc[i], "y_true": int(y[i]), "y_pred": int(y_pred[i]),
                 "sequence": evaluation["sequence"].iloc[i], "importance": importance[j].tolist()}
                for j, i in enumerate(pick)]
        write_parquet(pd.DataFrame(rows), files.explanations)
    table = insight.embeddings_table(insight.penultimate_features(model, x_test), y, y_pred, seed=seed)
    write_parquet(table, files.embeddings)

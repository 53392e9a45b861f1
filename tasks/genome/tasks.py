"""Prefect tasks of the genome pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from models.architectures import build
from models.card import Architecture, ModelCard
from models.lifecycle import (
    NO_HONEST_TEST,
    Decision,
    Fitted,
    honest_test,
    run_lifecycle,
    unit_keys,
    write_result,
)
from models.registry import ModelRegistry
from models.train import CNNPart, TrainConfig, predict_proba, seed_everything, train_model
from models.tuning import split_values, tuned
from tasks import insight, splits
from tasks.common import save_quarantine, stage
from tasks.errors import BadInputError
from tasks.genome import checks, encode, sources, training
from tasks.genome.files import GenomeFiles
from tasks.metrics import classification_metrics
from tasks.results import Checked, Ingested, Output, Trained
from tasks.store import fetch, open_zarr, read_json, read_parquet, write_parquet, write_zarr

PARTITION = 20_000
MIN_BATCHES = 20  # per epoch: a hundred records still get enough updates (400 at the default 20 epochs)


@stage("ingest", "ingest sequences")
def ingest_sequences(run_dir: str, *, input: str | list[str] | None, labels: str | None = None,
                     label_from_filename: bool = False, synthetic_n: int = 2000, seed: int = 0) -> Ingested:
    """Read FASTA/FASTQ/CSV (or write the synthetic set first) into one records table."""
    if input is None:
        from tasks.genome.synthetic import write_synthetic_fasta

        input = write_synthetic_fasta(Path(run_dir) / "input" / "synthetic.fasta", n=synthetic_n, seed=seed)["path"]
    input = [fetch(i) for i in input] if isinstance(input, list) else fetch(input)
    records = sources.read_records(input, labels=labels and fetch(labels), label_from_filename=label_from_filename)
    files = records.groupby("source", sort=False)["id"].count()
    label_source = ("--labels file" if labels else "file names" if label_from_filename
                    else "the records (CSV column or label= in headers)" if records["label"].notna().any() else "none")
    read = {"files": len(files), "formats": ", ".join(sorted({sources.sniff_format(Path(f)) for f in files.index})),
            "labels_from": label_source}
    return Ingested(output=write_parquet(records, GenomeFiles(run_dir).records), read=read)


@dataclass(frozen=True, kw_only=True)
class CheckedSequences(Checked):
    lengths: dict  # percentiles of the valid sequences' lengths (p5, median, p95, max)


@stage("check", "check sequences")
def check_sequences(records_uri: str, run_dir: str, *, min_length: int = 20) -> CheckedSequences:
    """Quarantine faulty records; profile the valid ones for the gate."""
    records = read_parquet(records_uri)
    labelled = bool(records["label"].notna().any())
    valid, quarantined = checks.clean_records(records, min_length=min_length, labelled=labelled)
    if valid.empty:
        reasons = quarantined["reason"].value_counts().head(3).to_dict()
        raise BadInputError(f"no usable sequence left after the checks ({reasons}); check the input files")
    files = GenomeFiles(run_dir)
    save_quarantine([quarantined.assign(kind="sequence", record=quarantined["id"])],
                    files.quarantine)
    profile = checks.sequence_profile(valid, quarantined=len(quarantined))
    write_parquet(valid, files.sequences)
    p5, p50, p95 = np.percentile(profile["length"], [5, 50, 95]).round().astype(int).tolist()
    return CheckedSequences(output=str(files.sequences), profile=write_parquet(profile, files.sequence_profile),
                            records_in=len(records), records_valid=len(valid), records_quarantined=len(quarantined),
                            lengths={"p5": p5, "median": p50, "p95": p95, "max": int(profile["length"].max())})


def _encode_partition(sequences: list[str], length: int, k: int, padding: str) -> tuple:
    codes = encode.base_codes(sequences, length, padding=padding)
    tokens = encode.kmer_tokens(codes, k)
    return codes, tokens, encode.kmer_counts(tokens, k)


@stage("encode", "encode sequences")
def encode_sequences(sequences_uri: str, run_dir: str, *, length: int = 200, k: int = 4,
                     padding: str = "centre") -> Output:
    """Base codes, k-mer tokens and k-mer counts for every sequence, computed in Dask over partitions of
    records and written to Zarr; one-hot is derived from the codes where needed."""
    table = read_parquet(sequences_uri)
    seqs = table["sequence"].tolist()
    parts = []
    for start in range(0, len(seqs), PARTITION):
        chunk = seqs[start:start + PARTITION]
        parts.append(dask.delayed(_encode_partition, nout=3)(chunk, length, k, padding))
    width, size = max(length - k + 1, 0), 4**k
    sizes = [min(PARTITION, len(seqs) - s) for s in range(0, len(seqs), PARTITION)]
    arrays = {}
    for i, (name, cols, dtype) in enumerate([("codes", length, "uint8"), ("tokens", width, "int32"),
                                             ("counts", size, "uint16")]):
        blocks = [da.from_delayed(p[i], shape=(n, cols), dtype=dtype) for p, n in zip(parts, sizes, strict=True)]
        arrays[name] = da.concatenate(blocks)
    ds = xr.Dataset({
        "codes": (("record", "position"), arrays["codes"]),
        "tokens": (("record", "kmer_position"), arrays["tokens"]),
        "counts": (("record", "kmer"), arrays["counts"]),
        "length": (("record",), table["sequence"].str.len().to_numpy()),
    }, coords={"id": ("record", table["id"].astype(str).to_numpy()),
               "label": ("record", table["label"].fillna("").astype(str).to_numpy())})
    ds.attrs.update(k=k, length=length, padding=padding)
    return Output(output=write_zarr(ds, GenomeFiles(run_dir).encoded))


@stage("profile_encoded", "profile encodings")
def profile_encodings(encoded_uri: str, run_dir: str) -> Output:
    """A row per partition of records: padding and unknown-k-mer shares, mean tokens per record."""
    ds = open_zarr(encoded_uri)
    tokens = ds["tokens"].data
    rows = []
    for start in range(0, ds.sizes["record"], PARTITION):
        part = tokens[start:start + PARTITION]
        pad, unknown = dask.compute((part == encode.PAD_TOKEN).mean(), (part == encode.UNKNOWN_TOKEN).mean())
        rows.append({"partition": start // PARTITION, "records": int(part.shape[0]), "pad_fraction": float(pad),
                     "unknown_fraction": float(unknown), "kmer_width": int(part.shape[1]), "k": int(ds.attrs["k"])})
    return Output(output=write_parquet(pd.DataFrame(rows), GenomeFiles(run_dir).encoded_profile))


def _inputs(codes: np.ndarray, counts: np.ndarray, arch: Architecture, k: int) -> np.ndarray:
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
    xt = _inputs(tr_codes, tr_counts, arch, k)
    xv = _inputs(x_codes[val], counts[val], arch, k)
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

    def compatible(self, card: ModelCard) -> bool:
        """Unlabelled records are re-encoded with the champion's own k and length when scored; labelled ones are
        compared on this run's encoding, so classes, k and length must match."""
        if self.class_names is None:
            return True
        return card.class_names == self.class_names and all(
            card.parameters.get(key) == self.params[key] for key in ("k", "length"))

    def proba(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> np.ndarray:
        x = _inputs(self.codes[units], self.counts[units], card.architecture, self.params["k"])
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
        proba = predict_proba(model, _inputs(self.codes[val], self.counts[val], arch, self.params["k"]))
        return classification_metrics(self.y[val], proba.argmax(1), proba)["macro_f1"]

    def fit(self) -> Fitted:
        p, idx = self.params, self.idx
        values, tuning = tuned(self._validation_f1, SEARCH, trials=p["tune"], seed=self.seed,
                               metric="validation macro F1")
        model, arch, history = self._fit(values)
        enc = arch.kwargs.get("encoding", "counts")
        inputs = {s: _inputs(self.codes[idx[s]], self.counts[idx[s]], arch, p["k"]) for s in ("val", "test")}
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


@stage("train", "train or load the classifier")
def train_sequence_classifier(encoded_uri: str, run_dir: str, models_root: str, *, mode: str = "auto",
                              model_name: str = "genome", architecture: str = "poscnn", encoding: str = "onehot",
                              epochs: int = 20, folds: int = 0, augment_rc: bool = False, seed: int = 0,
                              calibrate: str | None = None, mc_samples: int = 0, tune: int = 0) -> Trained:
    """Stratified split, then the one model lifecycle (models/lifecycle.py): train a challenger or reuse the
    champion, compare them on validation records the champion never saw, promote, and score with the champion
    after the decision; the model that scores and the two logistic-regression baselines are measured on the same
    test records, which that model never trained on."""
    ds = open_zarr(encoded_uri)
    k = int(ds.attrs["k"])
    labels_text = np.array(ds["label"].values.tolist(), dtype=str)
    labelled = bool((labels_text != "").all())
    class_names = sorted(set(labels_text)) if labelled else None
    if class_names is not None and len(class_names) < 2:
        raise BadInputError(f"only one class ({class_names[0]}) in the labels; a classifier needs two or more")
    codes, counts = dask.compute(ds["codes"].data, ds["counts"].data)
    y = np.searchsorted(class_names, labels_text).astype(np.int64) if labelled else np.zeros(len(labels_text), int)
    split = splits.stratified_split(y, seed=seed) if labelled else np.full(len(y), splits.SPLITS["test"], np.uint8)
    idx = {name: np.flatnonzero(split == i) for name, i in splits.SPLITS.items()}
    params = {"k": k, "length": int(ds.attrs["length"]), "padding": ds.attrs["padding"], "encoding": encoding,
              "epochs": epochs, "augment_rc": augment_rc, "tune": tune}
    spec = GenomeSpec(codes, counts, y, idx, class_names, params=params, architecture=architecture,
                      calibrate=calibrate, mc_samples=mc_samples, seed=seed)
    keys = unit_keys(row.tobytes() for row in codes)
    registry = ModelRegistry(models_root)
    decision = run_lifecycle(
        spec, registry, model_name, mode=mode if labelled else "never", keys=keys, split=split,
        no_champion=(f"there is no champion model {model_name!r} for these classes, k and --length; run with "
                     "--train auto" if labelled else
                     f"the sequences have no labels and there is no champion model {model_name!r} to score with; "
                     "label them (--labels id,label CSV, --label-from-filename, or label= in the FASTA headers) or "
                     "train a champion on labelled sequences first"))
    metrics, baselines, rare = {}, {}, []
    if labelled:
        rare = splits.rare_classes(y, split, class_names)
        metrics, baselines = _evaluate(decision, spec, registry, keys, codes, counts, y, idx, ds, run_dir, seed=seed)
        if folds and folds > 1:
            metrics["cv"] = _cross_validate(architecture, class_names, codes, counts, y, idx, folds,
                                            encoding=encoding, k=k, epochs=epochs,
                                            seed=seed)
    trained = write_result(decision, GenomeFiles(run_dir).training, metrics=metrics, baselines=baselines)
    return replace(trained, rare_classes=rare)


def _evaluate(decision: Decision, spec: GenomeSpec, registry: ModelRegistry, keys: np.ndarray, codes: np.ndarray,
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
        x_test = _inputs(codes[test], counts[test], card.architecture, card.parameters["k"])
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


def _cross_validate(architecture, class_names, codes, counts, y, idx, folds, *, encoding, k, epochs, seed) -> dict:
    """Stratified k-fold over the train and validation records."""
    pool = np.concatenate([idx["train"], idx["val"]])

    def fit_predict(fit: np.ndarray, stop: np.ndarray, held: np.ndarray, fold: int) -> np.ndarray:
        model, arch, _ = _fit(architecture, class_names, codes, counts, y, pool[fit], pool[stop], encoding=encoding,
                              k=k, epochs=epochs, seed=seed + fold, augment_rc=False)
        return predict_proba(model, _inputs(codes[pool[held]], counts[pool[held]], arch, k))

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


@stage("score", "score sequences")
def score_sequences(sequences_uri: str, training_uri: str, run_dir: str, models_root: str, *,
                    stride: int | None = None, mc_samples: int = 0) -> Output:
    """Class probabilities per record from the model the lifecycle chose (the champion after the decision),
    calibrated if it was, with an MC-dropout uncertainty when asked; records longer than the model's length are
    scored window by window along the sequence (a BED-like table)."""
    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["scored_with"])
    model = registry.load(info["name"], info["scored_with"], build(card))
    params = card.parameters
    length, k = params["length"], params["k"]
    table = read_parquet(sequences_uri)
    lengths = table["sequence"].str.len().to_numpy()
    rec, starts = training.sliding_windows(lengths, length, stride or max(1, length // 2))
    seqs = table["sequence"].to_numpy()
    rows = []
    for begin in range(0, len(rec), PARTITION):
        r, s = rec[begin:begin + PARTITION], starts[begin:begin + PARTITION]
        windows = [seqs[i][st:st + length] for i, st in zip(r, s, strict=True)]
        codes = encode.base_codes(windows, length, padding=params["padding"])
        counts = encode.kmer_counts(encode.kmer_tokens(codes, k), k)
        proba, uncertainty = insight.score_proba(model, _inputs(codes, counts, card.architecture, k),
                                                 mc_samples=mc_samples, calibration=card.calibration)
        frame = pd.DataFrame(proba, columns=[f"p_{c}" for c in card.class_names])
        if uncertainty is not None:
            frame["uncertainty"] = uncertainty
        frame.insert(0, "end", np.minimum(s + length, lengths[r]))
        frame.insert(0, "start", s)
        frame.insert(0, "id", table["id"].to_numpy()[r])
        frame.insert(3, "predicted", np.asarray(card.class_names)[proba.argmax(1)])
        rows.append(frame)
    regions = pd.concat(rows, ignore_index=True)
    regions.to_csv(Path(run_dir) / "regions.bed.tmp", sep="\t", index=False, header=False)
    Path(run_dir, "regions.bed.tmp").replace(Path(run_dir) / "regions.bed")
    return Output(output=write_parquet(regions, GenomeFiles(run_dir).predictions))

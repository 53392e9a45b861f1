"""Prefect tasks of the genome pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from models.architectures import build
from models.lifecycle import (
    run_lifecycle,
    unit_keys,
    write_result,
)
from models.registry import ModelRegistry
from tasks import insight, splits
from tasks.common import save_quarantine, stage
from tasks.errors import BadInputError
from tasks.genome import checks, classifier, encode, sources, training
from tasks.genome.files import GenomeFiles
from tasks.results import Checked, Ingested, Output, Trained
from tasks.store import fetch, open_zarr, read_json, read_parquet, write_parquet, write_zarr

PARTITION = 20_000


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
    spec = classifier.GenomeSpec(codes, counts, y, idx, class_names, params=params, architecture=architecture,
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
        metrics, baselines = classifier.evaluate(decision, spec, registry, keys, codes, counts, y, idx, ds, run_dir,
                                                 seed=seed)
        if folds and folds > 1:
            metrics["cv"] = classifier.cross_validate(architecture, class_names, codes, counts, y, idx, folds,
                                                      encoding=encoding, k=k, epochs=epochs, seed=seed)
    trained = write_result(decision, GenomeFiles(run_dir).training, metrics=metrics, baselines=baselines)
    return replace(trained, rare_classes=rare)


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
        proba, uncertainty = insight.score_proba(model, classifier.model_inputs(codes, counts, card.architecture, k),
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

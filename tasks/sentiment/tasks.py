"""Prefect tasks of the sentiment pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

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
from tasks.results import Checked, Ingested, Output, Trained
from tasks.sentiment import checks, classifier, clean, sources, training
from tasks.sentiment.files import SentimentFiles
from tasks.store import fetch, read_json, read_parquet, write_parquet

PARTITION = 50_000


@dataclass(frozen=True, kw_only=True)
class IngestedPosts(Ingested):
    undecodable_replaced: int  # bytes not valid in the encoding, replaced
    mojibake_repaired: int  # posts whose text ftfy repaired


@dataclass(frozen=True, kw_only=True)
class CheckedPosts(Checked):
    duplicates: int  # posts quarantined as a duplicate of another


@dataclass(frozen=True, kw_only=True)
class CleanedPosts(Output):
    profile: str  # the table the gate validates


@stage("ingest", "ingest posts")
def ingest_posts(run_dir: str, *, input: str | None, text_column: str | None = None,
                 label_column: str | None = None, encoding: str = "utf-8", synthetic_n: int = 3000,
                 seed: int = 0) -> IngestedPosts:
    """Read posts (or write the synthetic set first), repairing undecodable bytes and mojibake."""
    if input is None:
        from tasks.sentiment.synthetic import write_synthetic_posts

        input = write_synthetic_posts(Path(run_dir) / "input" / "posts.csv", n=synthetic_n, seed=seed)
    posts, repairs = sources.read_posts(fetch(input), text_column=text_column, label_column=label_column,
                                        encoding=encoding)
    return IngestedPosts(output=write_parquet(posts, SentimentFiles(run_dir).posts), **repairs)


@stage("check", "check posts")
def check_posts(posts_uri: str, run_dir: str, *, max_chars: int = 5000) -> CheckedPosts:
    """Quarantine empty, unlabelled, oversized and duplicate posts; profile the rest for the gate."""
    posts = read_parquet(posts_uri)
    labelled = bool(posts["label"].notna().any())
    valid, quarantined = checks.check_posts(posts, max_chars=max_chars, labelled=labelled)
    if valid.empty:
        raise BadInputError(f"no usable post left after the checks ({quarantined['reason'].value_counts().to_dict()})")
    files = SentimentFiles(run_dir)
    save_quarantine([quarantined.assign(kind="post", record=quarantined["id"])], files.quarantine)
    profile = checks.posts_profile(valid, quarantined)
    write_parquet(valid, files.valid_posts)
    duplicates = int(quarantined["reason"].str.startswith("duplicate").sum())
    return CheckedPosts(output=str(files.valid_posts), profile=write_parquet(profile, files.posts_profile),
                        records_in=len(posts), records_valid=len(valid), records_quarantined=len(quarantined),
                        duplicates=duplicates)


@stage("clean", "clean posts")
def clean_posts(posts_uri: str, run_dir: str, *, options: dict | None = None) -> CleanedPosts:
    """Clean every post in Dask, one task per partition of posts (in processes on the local threads cluster);
    write the cleaned table to Parquet."""
    posts = read_parquet(posts_uri)
    opts = clean.CleanOptions(**(options or {}))
    cleaned = clean.clean_partitions(posts["text"], opts, partition=PARTITION)
    table = pd.concat([posts.reset_index(drop=True), cleaned.reset_index(drop=True)], axis=1)
    table["n_tokens"] = table["tokens"].map(len)
    profile = table[["n_tokens"]].assign(empty_share=float((table["n_tokens"] == 0).mean()))
    files = SentimentFiles(run_dir)
    write_parquet(profile, files.clean_profile)
    return CleanedPosts(output=write_parquet(table, files.clean_posts), profile=str(files.clean_profile))


@stage("train", "train or load the classifier")
def train_text_classifier(clean_uri: str, run_dir: str, models_root: str, *, mode: str = "auto",
                          model_name: str = "sentiment", max_tokens: int | None = None, epochs: int = 15,
                          seed: int = 0, calibrate: str | None = None, mc_samples: int = 0, folds: int = 0,
                          tune: int = 0, clean_options: dict | None = None) -> Trained:
    """Split first, then the one model lifecycle (models/lifecycle.py): a challenger hybrid text model (vocabulary and
    TF-IDF fitted on the training posts only) or the champion, compared on validation posts the champion never
    saw; the model that scores and the TF-IDF + logistic regression baseline on the same test posts."""
    table = read_parquet(clean_uri)
    labelled = bool(table["label"].notna().all())
    class_names = sorted(table["label"].astype(str).unique()) if labelled else None
    if class_names is not None and len(class_names) < 2:
        raise BadInputError(f"only one label ({class_names[0]}) in the posts; a classifier needs two or more")
    y = np.searchsorted(class_names, table["label"].astype(str)).astype(np.int64) if labelled else \
        np.zeros(len(table), np.int64)
    split = splits.stratified_split(y, seed=seed) if labelled else np.full(len(y), splits.SPLITS["test"], np.uint8)
    idx = {name: np.flatnonzero(split == i) for name, i in splits.SPLITS.items()}
    tokens = table["tokens"].map(list).tolist()
    registry = ModelRegistry(models_root)
    spec = classifier.SentimentSpec(tokens, y, idx, class_names, registry, max_tokens=max_tokens, epochs=epochs,
                                    calibrate=calibrate, mc_samples=mc_samples, seed=seed,
                                    fingerprint=classifier.fingerprint(table), tune=tune,
                                    clean=clean.CleanOptions(**(clean_options or {})).as_dict())
    keys = unit_keys(table["text"].astype(str))
    decision = run_lifecycle(
        spec, registry, model_name, mode=mode if labelled else "never", keys=keys, split=split,
        no_champion=(f"there is no champion model {model_name!r} to score with"
                     + (" for these labels; run with --train auto" if labelled else
                        "; the posts have no label column: pass --label-column (the input's columns are in "
                        "run.json, inputs.columns) or train a champion on labelled posts first")))
    metrics, baselines, rare = {}, {}, []
    if labelled:
        rare = splits.rare_classes(y, split, class_names)
        metrics, baselines = classifier.evaluate(decision, spec, registry, keys, table, idx, run_dir, seed=seed)
        if folds and folds > 1:
            metrics["cv"] = classifier.cross_validate(tokens, y, idx, folds, class_names, max_tokens=max_tokens,
                                                      epochs=epochs, seed=seed)
    trained = write_result(decision, SentimentFiles(run_dir).training, metrics=metrics, baselines=baselines)
    return replace(trained, rare_classes=rare)


@stage("score", "score posts")
def score_posts(clean_uri: str, training_uri: str, run_dir: str, models_root: str, *, mc_samples: int = 0) -> Output:
    """Class probabilities for every cleaned post (calibrated if the model was) from the model the lifecycle chose
    (the champion after the decision); an uncertainty per post with MC dropout."""
    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["scored_with"])
    vocabulary = json.loads(registry.file(info["name"], info["scored_with"], "vocabulary.json"))
    model = registry.load(info["name"], info["scored_with"], build(card))
    table = read_parquet(clean_uri)
    ids = training.model_ids(table["tokens"].map(list).tolist(), vocabulary, card)
    proba, uncertainty = insight.score_proba(model, ids, mc_samples=mc_samples, calibration=card.calibration)
    if not len(ids):
        proba = np.zeros((0, len(card.class_names)))
    out = pd.DataFrame(proba, columns=[f"p_{c}" for c in card.class_names])
    if uncertainty is not None:
        out["uncertainty"] = uncertainty
    out.insert(0, "predicted", np.asarray(card.class_names)[proba.argmax(1)] if len(ids) else [])
    out.insert(0, "id", table["id"].to_numpy())
    return Output(output=write_parquet(out, SentimentFiles(run_dir).predictions))

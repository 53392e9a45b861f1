"""Prefect tasks of the sentiment pipeline: each reads URIs, calls plain functions, writes atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE
from torch import nn

from models.registry import ModelRegistry, challenger_wins
from models.sentiment import TextCNN
from models.train import TrainConfig, predict_proba, seed_everything, train_model
from tasks import insight, splits
from tasks.common import save_quarantine
from tasks.errors import BadInputError
from tasks.evaluate import classification_metrics
from tasks.sentiment import checks, clean, features, sources
from tasks.store import fetch, join, read_json, read_parquet, write_json, write_parquet

CACHED = {"cache_policy": INPUTS + TASK_SOURCE, "persist_result": True}
PARTITION = 50_000


def _run(run_dir: str, name: str) -> str:
    return str(Path(run_dir) / name)


@task(name="ingest posts", **CACHED)
def ingest_posts(run_dir: str, *, input: str | None, text_column: str | None = None,
                 label_column: str | None = None, encoding: str = "utf-8", synthetic_n: int = 3000,
                 seed: int = 0) -> dict:
    """Read posts (or write the synthetic set first), repairing undecodable bytes and mojibake."""
    if input is None:
        from tasks.sentiment.synthetic import write_synthetic_posts

        input = write_synthetic_posts(Path(run_dir) / "input" / "posts.csv", n=synthetic_n, seed=seed)
    posts, repairs = sources.read_posts(fetch(input), text_column=text_column, label_column=label_column,
                                        encoding=encoding)
    return {"output": write_parquet(posts, _run(run_dir, "posts.parquet")), **repairs}


@task(name="check posts", **CACHED)
def check_posts(posts_uri: str, run_dir: str, *, max_chars: int = 5000) -> dict:
    """Quarantine empty, unlabelled, oversized and duplicate posts; profile the rest for the gate."""
    posts = read_parquet(posts_uri)
    labelled = bool(posts["label"].notna().any())
    valid, quarantined = checks.check_posts(posts, max_chars=max_chars, labelled=labelled)
    if valid.empty:
        raise BadInputError(f"no usable post left after the checks ({quarantined['reason'].value_counts().to_dict()})")
    save_quarantine([quarantined.assign(kind="post", record=quarantined["id"])], _run(run_dir, "quarantine.parquet"))
    profile = checks.posts_profile(valid, quarantined)
    write_parquet(valid, _run(run_dir, "valid_posts.parquet"))
    duplicates = int(quarantined["reason"].str.startswith("duplicate").sum())
    return {"output": _run(run_dir, "valid_posts.parquet"),
            "profile": write_parquet(profile, _run(run_dir, "posts_profile.parquet")),
            "records_in": len(posts), "records_valid": len(valid), "records_quarantined": len(quarantined),
            "duplicates": duplicates}


@task(name="clean posts", **CACHED)
def clean_posts(posts_uri: str, run_dir: str, *, options: dict | None = None) -> dict:
    """Clean every post in Dask, one task per partition of posts (in processes on the local threads cluster);
    write the cleaned table to Parquet."""
    posts = read_parquet(posts_uri)
    opts = clean.CleanOptions(**(options or {}))
    cleaned = clean.clean_partitions(posts["text"], opts, partition=PARTITION)
    table = pd.concat([posts.reset_index(drop=True), cleaned.reset_index(drop=True)], axis=1)
    table["n_tokens"] = table["tokens"].map(len)
    profile = table[["n_tokens"]].assign(empty_share=float((table["n_tokens"] == 0).mean()))
    write_parquet(profile, _run(run_dir, "clean_profile.parquet"))
    return {"output": write_parquet(table, _run(run_dir, "clean_posts.parquet")),
            "profile": _run(run_dir, "clean_profile.parquet"), "options": opts.as_dict()}


def _fingerprint(table: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(table[["clean_text", "label"]], index=False).values.tobytes()
                          ).hexdigest()[:16]


@task(name="train or load the classifier", **CACHED)
def train_text_classifier(clean_uri: str, run_dir: str, models_root: str, *, mode: str = "auto",
                          model_name: str = "sentiment", max_tokens: int = 48, epochs: int = 15,
                          seed: int = 0, calibrate: str | None = None, mc_samples: int = 0, folds: int = 0) -> dict:
    """Split first; fit the vocabulary and TF-IDF on the training posts only; train the text CNN with class
    weights and the TF-IDF + logistic regression baseline on the same split; champion/challenger."""
    table = read_parquet(clean_uri)
    registry = ModelRegistry(models_root)
    champion = registry.champion(model_name)
    labelled = bool(table["label"].notna().all())
    if mode == "never" or not labelled:
        if champion is None:
            raise BadInputError(f"the posts have no label column and there is no champion model {model_name!r} to "
                                "score with; pass --label-column (the input's columns are in run.json, "
                                "inputs.columns) or train a champion on labelled posts first")
        return _result(run_dir, champion, trained=False, promoted=False, metrics={}, baselines={}, history={})
    class_names = sorted(table["label"].astype(str).unique())
    if len(class_names) < 2:
        raise BadInputError(f"only one label ({class_names[0]}) in the posts; a classifier needs two or more")
    y = np.searchsorted(class_names, table["label"].astype(str)).astype(np.int64)
    split = splits.stratified_split(y, seed=seed)
    idx = {name: np.flatnonzero(split == i) for name, i in splits.SPLITS.items()}
    tokens = table["tokens"].map(list).tolist()
    vocabulary = features.build_vocabulary([tokens[i] for i in idx["train"]])
    ids = features.token_ids(tokens, vocabulary, max_tokens)
    model, history = _fit_text_cnn(ids, y, idx["train"], idx["val"], len(vocabulary) + 2, len(class_names),
                                   epochs=epochs, seed=seed)

    def evaluate(m: nn.Module, vocab: dict, which: str) -> tuple[dict, np.ndarray]:
        x = features.token_ids([tokens[i] for i in idx[which]], vocab, max_tokens)
        proba = predict_proba(m, x)
        return classification_metrics(y[idx[which]], proba.argmax(1), proba, class_names=class_names), proba

    val_f1 = evaluate(model, vocabulary, "val")[0]["macro_f1"]
    champion_f1 = None
    if champion is not None and champion["class_names"] == class_names:
        champ_vocab = read_json(join(champion["uri"], "vocabulary.json"))
        champ = registry.load(model_name, champion["version"], TextCNN(**champion["architecture"]["kwargs"]))
        champion_f1 = evaluate(champ, champ_vocab, "val")[0]["macro_f1"]
    if folds and folds > 1:
        pool = np.concatenate([idx["train"], idx["val"]])

        def fit_predict(fit: np.ndarray, stop: np.ndarray, held: np.ndarray, fold: int) -> np.ndarray:
            vocab = features.build_vocabulary([tokens[i] for i in pool[fit]])
            x = features.token_ids(tokens, vocab, max_tokens)
            fitted, _ = _fit_text_cnn(x, y, pool[fit], pool[stop], len(vocab) + 2, len(class_names), epochs=epochs,
                                      seed=seed + fold)
            return predict_proba(fitted, x[pool[held]])

        cv = insight.cross_validate(fit_predict, y[pool], folds, class_names=class_names, seed=seed)
    x_test = features.token_ids([tokens[i] for i in idx["test"]], vocabulary, max_tokens)
    val_proba, _ = insight.score_proba(model, ids[idx["val"]], mc_samples=mc_samples, seed=seed)
    proba, uncertainty = insight.score_proba(model, x_test, mc_samples=mc_samples, seed=seed)
    metrics, evaluation, calibration = insight.analyse_predictions(
        y[idx["val"]], val_proba, y[idx["test"]], proba, class_names, calibrate=calibrate, uncertainty=uncertainty)
    if folds and folds > 1:
        metrics["cv"] = cv
    tfidf = features.fit_tfidf([tokens[i] for i in idx["train"]])
    from sklearn.linear_model import LogisticRegression

    baseline = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    baseline.fit(features.tfidf_matrix(tfidf, [tokens[i] for i in idx["train"]]), y[idx["train"]])
    base_proba = np.zeros((len(idx["test"]), len(class_names)))
    base_proba[:, baseline.classes_] = baseline.predict_proba(
        features.tfidf_matrix(tfidf, [tokens[i] for i in idx["test"]]))
    baselines = {"tfidf_logreg": classification_metrics(y[idx["test"]], base_proba.argmax(1), base_proba,
                                                        class_names=class_names)}
    card = {"architecture": {"class": "TextCNN", "kwargs": {"vocab_size": len(vocabulary) + 2,
                                                            "n_classes": len(class_names)}},
            "class_names": class_names, "metrics": metrics, "history": history,
            "validation": {"macro_f1": val_f1, "champion_macro_f1": champion_f1}, "calibration": calibration,
            "parameters": {"max_tokens": max_tokens, "epochs": epochs, "seed": seed},
            "data": {"posts": len(table), "run_dir": run_dir, "fingerprint": _fingerprint(table)}}
    info = registry.register(model_name, model, card,
                             extra_files={"vocabulary.json": json.dumps(vocabulary).encode()})
    promoted = challenger_wins(val_f1, champion_f1) and registry.promote(
        model_name, info["version"], expected=champion["version"] if champion else None)
    test = table.iloc[idx["test"]]
    evaluation.insert(0, "text", test["text"].to_numpy())
    evaluation.insert(0, "id", test["id"].to_numpy())
    lengths = np.array([len(tokens[i]) for i in idx["test"]])
    evaluation["tokens_bin"] = pd.cut(lengths, [-1, 5, 10, 20, 40, np.inf],
                                      labels=["0-5", "6-10", "11-20", "21-40", "41+"])
    write_parquet(evaluation, _run(run_dir, "evaluation.parquet"))
    _explain(model, x_test, evaluation, [tokens[i] for i in idx["test"]], run_dir, seed=seed)
    card_info = {**info, "class_names": class_names, "history": history}
    return {**_result(run_dir, card_info, trained=True, promoted=promoted, metrics=metrics, baselines=baselines,
                      history=history, champion=champion["version"] if champion else None),
            "rare_classes": splits.rare_classes(y, split, class_names)}


def _fit_text_cnn(ids: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, vocab_size: int,
                  n_classes: int, *, epochs: int, seed: int) -> tuple[nn.Module, dict]:
    """A text CNN with class weights from the training posts, early-stopped on the validation posts."""
    seed_everything(seed)
    model = TextCNN(vocab_size, n_classes)
    counts = np.bincount(y[train], minlength=n_classes).astype(np.float32)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes, dtype=torch.float32)
    history = train_model(model, (ids[train], y[train]), (ids[val], y[val]),
                          loss_fn=nn.CrossEntropyLoss(weight=weights),
                          config=TrainConfig(epochs=epochs, seed=seed, batch_size=64, patience=4))
    return model, history


def _explain(model: nn.Module, x_test: np.ndarray, evaluation: pd.DataFrame, tokens: list[list[str]], run_dir: str,
             *, seed: int, n: int = 6) -> None:
    """Per-token integrated gradients for the most confident mistakes and a few right predictions, and the
    penultimate-layer embeddings of the test posts."""
    y, y_pred = evaluation["y_true"].to_numpy(), evaluation["y_pred"].to_numpy()
    proba = evaluation[[c for c in evaluation.columns if c.startswith("p_")]].to_numpy()
    mistakes = insight.confident_mistakes(y, proba, n=n // 2)
    right = np.flatnonzero(y == y_pred)
    pick = np.concatenate([mistakes, np.random.default_rng(seed).permutation(right)[: n - len(mistakes)]])
    if len(pick):
        ids = torch.as_tensor(x_test[pick])
        importance = insight.embedding_attributions(model, model.embed, ids, y_pred[pick])
        rows = [{"id": evaluation["id"].iloc[i], "text": evaluation["text"].iloc[i], "y_true": int(y[i]),
                 "y_pred": int(y_pred[i]), "mistake": bool(y[i] != y_pred[i]), "tokens": tokens[i][:ids.shape[1]],
                 "importance": importance[j, :len(tokens[i][:ids.shape[1]])].tolist()} for j, i in enumerate(pick)]
        write_parquet(pd.DataFrame(rows), _run(run_dir, "explanations.parquet"))
    table = insight.embeddings_table(insight.penultimate_features(model, x_test), y, y_pred, seed=seed)
    write_parquet(table, _run(run_dir, "embeddings.parquet"))


def _result(run_dir: str, card: dict, *, trained: bool, promoted: bool, metrics: dict, baselines: dict,
            history: dict, champion: str | None = None) -> dict:
    result = {"model": {"name": card["name"], "version": card["version"], "uri": card["uri"], "promoted": promoted,
                        "trained": trained, "champion": champion if trained else card["version"]},
              "metrics": metrics, "baselines": baselines, "history": history or card.get("history", {}),
              "class_names": card["class_names"]}
    uri = write_json(result, _run(run_dir, "training.json"))
    return {"output": uri, **{k: result[k] for k in ("model", "metrics", "baselines")}}


@task(name="score posts", **CACHED)
def score_posts(clean_uri: str, training_uri: str, run_dir: str, models_root: str, *, mc_samples: int = 0) -> dict:
    """Class probabilities for every cleaned post (calibrated if the model was), with the model the run trained or
    loaded; an uncertainty per post with MC dropout."""
    info = read_json(training_uri)["model"]
    registry = ModelRegistry(models_root)
    card = registry.card(info["name"], info["version"])
    vocabulary = read_json(join(card["uri"], "vocabulary.json"))
    model = registry.load(info["name"], info["version"], TextCNN(**card["architecture"]["kwargs"]))
    table = read_parquet(clean_uri)
    ids = features.token_ids(table["tokens"].map(list).tolist(), vocabulary, card["parameters"]["max_tokens"])
    proba, uncertainty = insight.score_proba(model, ids, mc_samples=mc_samples, calibration=card.get("calibration"))
    if not len(ids):
        proba = np.zeros((0, len(card["class_names"])))
    out = pd.DataFrame(proba, columns=[f"p_{c}" for c in card["class_names"]])
    if uncertainty is not None:
        out["uncertainty"] = uncertainty
    out.insert(0, "predicted", np.asarray(card["class_names"])[proba.argmax(1)] if len(ids) else [])
    out.insert(0, "id", table["id"].to_numpy())
    return {"output": write_parquet(out, _run(run_dir, "predictions.parquet"))}

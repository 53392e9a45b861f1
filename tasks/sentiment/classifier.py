"""The sentiment classifier's lifecycle: what ``train_text_classifier`` trains, tests, explains and compares with.

``SentimentSpec`` tells models/lifecycle.py how to fit the hybrid TF-IDF + text CNN on the training posts (its
vocabulary too), score a champion on the test posts and fit the TF-IDF + logistic regression baseline on the same
posts; the helpers around it evaluate, cross-validate and explain.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import torch
from torch import nn

from models.card import Architecture, ModelCard
from models.lifecycle import NO_HONEST_TEST, Decision, Fitted, honest_test
from models.registry import ModelRegistry
from models.sentiment import HybridTextCNN
from models.train import predict_proba
from models.tuning import split_values, tuned
from tasks import insight
from tasks.metrics import classification_metrics
from tasks.sentiment import features, training
from tasks.sentiment.files import SentimentFiles
from tasks.store import write_parquet

VOCABULARY = 100_000  # every training token up to this many: the linear part reads them all, as TF-IDF does
# --tune: the CNN part's size and dropout, and the learning rate
SEARCH = {"lr": ("log", 3e-4, 3e-3), "channels": ("choice", [32, 64, 128]), "dropout": ("float", 0.2, 0.6)}


def fingerprint(table: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(table[["clean_text", "label"]], index=False).values.tobytes()
                          ).hexdigest()[:16]


class SentimentSpec:
    """The sentiment domain for the model lifecycle: posts as token lists, the hybrid TF-IDF + text CNN model with
    its own vocabulary fitted on the training posts, early-stopped and calibrated on validation, scored by macro
    F1."""

    def __init__(self, tokens: list[list[str]], y: np.ndarray, idx: dict, class_names: list[str] | None,
                 registry: ModelRegistry, *, max_tokens: int | None, epochs: int, calibrate: str | None,
                 mc_samples: int, seed: int, fingerprint: str, tune: int = 0, clean: dict | None = None) -> None:
        self.tokens, self.y, self.idx, self.class_names, self.registry = tokens, y, idx, class_names, registry
        self.max_tokens, self.epochs, self.calibrate, self.mc_samples, self.seed = (max_tokens, epochs, calibrate,
                                                                                   mc_samples, seed)
        self.fingerprint, self.tune, self.clean = fingerprint, tune, clean

    def mismatch(self, card: ModelCard) -> str | None:
        """Other classes, or posts cleaned otherwise than the model's training posts (its vocabulary would miss
        their tokens)."""
        if self.class_names is not None and card.class_names != self.class_names:
            return f"it predicts {card.class_names}, these posts are labelled {self.class_names}"
        theirs = card.parameters.get("clean")
        if theirs is not None and self.clean is not None and theirs != self.clean:
            other = ", ".join(f"{step} {'on' if on else 'off'}" for step, on in theirs.items()
                              if self.clean.get(step) != on)
            off = " ".join(f"--no {step}" for step, on in theirs.items() if not on)
            return (f"it was trained on posts cleaned with {other} (unlike this run); "
                    f"run with {off or 'every cleaning step on (no --no)'}")
        return None

    def ids(self, card: ModelCard, units: np.ndarray) -> np.ndarray:
        """Token ids of the posts at ``units`` in the vocabulary of the model with ``card``."""
        vocabulary = json.loads(self.registry.file(card.name, card.version, "vocabulary.json"))
        return training.model_ids([self.tokens[i] for i in units], vocabulary, card)

    def proba(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> np.ndarray:
        return insight.score_proba(model, self.ids(card, units), calibration=card.calibration)[0]

    def score(self, model: nn.Module, card: ModelCard, units: np.ndarray) -> float:
        proba = self.proba(model, card, units)
        return classification_metrics(self.y[units], proba.argmax(1), proba, class_names=self.class_names)["macro_f1"]

    def fit(self) -> Fitted:
        idx, n_classes = self.idx, len(self.class_names)
        vocabulary = features.build_vocabulary([self.tokens[i] for i in idx["train"]], min_count=1,
                                               max_size=VOCABULARY)
        length = self.max_tokens or training.post_length([self.tokens[i] for i in idx["train"]])
        ids = training.whole_posts(self.tokens, vocabulary)

        def fit(values: dict) -> tuple[nn.Module, dict]:
            return training.fit_hybrid(ids, self.y, idx["train"], idx["val"], vocabulary, n_classes,
                                       cnn_tokens=length, epochs=self.epochs, seed=self.seed, values=values)

        def validation_f1(values: dict) -> float:
            history = fit(values)[1]
            return history["beta_val"][str(history["beta"])]["macro_f1"]

        values, tuning = tuned(validation_f1, SEARCH, trials=self.tune, seed=self.seed, metric="validation macro F1")
        model, history = fit(values)
        val_proba, _ = insight.score_proba(model, ids[idx["val"]], mc_samples=self.mc_samples, seed=self.seed)
        proba, uncertainty = insight.score_proba(model, ids[idx["test"]], mc_samples=self.mc_samples, seed=self.seed)
        metrics, evaluation, calibration = insight.analyse_predictions(
            self.y[idx["val"]], val_proba, self.y[idx["test"]], proba, self.class_names, calibrate=self.calibrate,
            uncertainty=uncertainty)
        kwargs = {"vocab_size": len(vocabulary) + 2, "n_classes": n_classes, "n_bigrams": model.bigrams.numel(),
                  "n_subwords": len(model.idf) - model.vocab_size - model.bigrams.numel(),
                  "subword_slots": model.subwords.shape[1], "cnn_tokens": length, **split_values(values)[0]}
        card = ModelCard(architecture=Architecture(name="HybridTextCNN", kwargs=kwargs),
                         class_names=self.class_names, metrics=metrics, history=history, calibration=calibration,
                         parameters={"max_tokens": length, "epochs": self.epochs, "seed": self.seed,
                                     "beta": history["beta"], "clean": self.clean},
                         data={"posts": len(self.y), "fingerprint": self.fingerprint}, tuning=tuning)
        return Fitted(model, card, extra_files={"vocabulary.json": json.dumps(vocabulary).encode()},
                      outputs={"evaluation": evaluation, "x_test": ids[idx["test"]]})


def evaluate(decision: Decision, spec: SentimentSpec, registry: ModelRegistry, keys: np.ndarray,
              table: pd.DataFrame, idx: dict, run_dir: str, *, seed: int) -> tuple[dict, dict]:
    """Metrics of the run: the challenger's on its test posts when one was trained, else the champion's on the
    test posts it never saw; the TF-IDF baseline on the same posts; the evaluation table and explanations."""
    test = honest_test(decision, registry, keys, idx["test"])
    if len(test) == 0:
        return {"note": NO_HONEST_TEST}, {}
    card, y, tokens = decision.trained or decision.scoring, spec.y, spec.tokens
    if decision.fitted is not None:
        model, outputs = decision.fitted.model, decision.fitted.outputs
        metrics, evaluation, x_test = dict(card.metrics), outputs["evaluation"], outputs["x_test"]
    else:
        model, x_test = decision.model, spec.ids(card, test)
        proba = spec.proba(model, card, test)
        metrics = classification_metrics(y[test], proba.argmax(1), proba, class_names=card.class_names)
        evaluation = insight.prediction_table(y[test], proba)
    metrics["test_records"] = int(len(test))
    tfidf = features.fit_tfidf([tokens[i] for i in idx["train"]])
    from sklearn.linear_model import LogisticRegression

    baseline = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    baseline.fit(features.tfidf_matrix(tfidf, [tokens[i] for i in idx["train"]]), y[idx["train"]])
    base_proba = np.zeros((len(test), len(card.class_names)))
    base_proba[:, baseline.classes_] = baseline.predict_proba(features.tfidf_matrix(tfidf, [tokens[i] for i in test]))
    baselines = {"tfidf_logreg": classification_metrics(y[test], base_proba.argmax(1), base_proba,
                                                        class_names=card.class_names)}
    posts = table.iloc[test]
    evaluation.insert(0, "text", posts["text"].to_numpy())
    evaluation.insert(0, "id", posts["id"].to_numpy())
    evaluation["tokens_bin"] = pd.cut(np.array([len(tokens[i]) for i in test]), [-1, 5, 10, 20, 40, np.inf],
                                      labels=["0-5", "6-10", "11-20", "21-40", "41+"])
    write_parquet(evaluation, SentimentFiles(run_dir).evaluation)
    _explain(model, x_test, evaluation, [tokens[i] for i in test], run_dir, seed=seed)
    return metrics, baselines


def cross_validate(tokens: list[list[str]], y: np.ndarray, idx: dict, folds: int, class_names: list[str], *,
                    max_tokens: int | None, epochs: int, seed: int) -> dict:
    """Stratified k-fold over the train and validation posts, a vocabulary per fold."""
    pool = np.concatenate([idx["train"], idx["val"]])

    def fit_predict(fit: np.ndarray, stop: np.ndarray, held: np.ndarray, fold: int) -> np.ndarray:
        vocab = features.build_vocabulary([tokens[i] for i in pool[fit]], min_count=1, max_size=VOCABULARY)
        x = training.whole_posts(tokens, vocab)
        fitted, _ = training.fit_hybrid(x, y, pool[fit], pool[stop], vocab, len(class_names), epochs=epochs,
                                        seed=seed + fold,
                                        cnn_tokens=max_tokens or training.post_length([tokens[i] for i in pool[fit]]))
        return predict_proba(fitted, x[pool[held]])

    return insight.cross_validate(fit_predict, y[pool], folds, class_names=class_names, seed=seed)


def _explain(model: nn.Module, x_test: np.ndarray, evaluation: pd.DataFrame, tokens: list[list[str]], run_dir: str,
             *, seed: int, n: int = 6) -> None:
    """Per-token integrated gradients for the most confident mistakes and a few right predictions, and the
    penultimate-layer embeddings of the test posts."""
    y, y_pred = evaluation["y_true"].to_numpy(), evaluation["y_pred"].to_numpy()
    proba = evaluation[[c for c in evaluation.columns if c.startswith("p_")]].to_numpy()
    mistakes = insight.confident_mistakes(y, proba, n=n // 2)
    right = np.flatnonzero(y == y_pred)
    pick = np.concatenate([mistakes, np.random.default_rng(seed).permutation(right)[: n - len(mistakes)]])
    files = SentimentFiles(run_dir)
    if len(pick):
        ids = torch.as_tensor(x_test[pick])
        importance = insight.embedding_attributions(model, model.embed, ids, y_pred[pick])
        if isinstance(model, HybridTextCNN):  # the CNN part reads the first cnn_tokens, the linear part them all
            importance = np.pad(importance, ((0, 0), (0, ids.shape[1] - importance.shape[1])))
            importance = importance + model.linear_attributions(ids, torch.as_tensor(y_pred[pick])).numpy()
        rows = [{"id": evaluation["id"].iloc[i], "text": evaluation["text"].iloc[i], "y_true": int(y[i]),
                 "y_pred": int(y_pred[i]), "mistake": bool(y[i] != y_pred[i]), "tokens": tokens[i][:ids.shape[1]],
                 "importance": importance[j, :len(tokens[i][:ids.shape[1]])].tolist()} for j, i in enumerate(pick)]
        write_parquet(pd.DataFrame(rows), files.explanations)
    table = insight.embeddings_table(insight.penultimate_features(model, x_test), y, y_pred, seed=seed)
    write_parquet(table, files.embeddings)

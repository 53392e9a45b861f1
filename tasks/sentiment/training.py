"""Fitting the hybrid text model: the linear part as a logistic regression on its own TF-IDF, the CNN part on the
same training posts with early stopping on validation, then how much the CNN adds, chosen on validation."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from torch import nn

from models.sentiment import HybridTextCNN
from models.train import TrainConfig, predict_proba, seed_everything, train_model
from tasks.evaluate import classification_metrics

BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)


def post_length(token_lists: list[list[str]]) -> int:
    """Tokens per post the model reads: the 99th percentile of the training posts, between 8 and 512."""
    lengths = [len(tokens) for tokens in token_lists]
    return int(np.clip(np.ceil(np.percentile(lengths, 99)) if lengths else 8, 8, 512))


class _CNNPart(nn.Module):
    def __init__(self, model: HybridTextCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.cnn_logits(ids)


def tfidf_design(model: HybridTextCNN, ids: np.ndarray) -> sparse.csr_matrix:
    """The posts' TF-IDF vectors exactly as the model's linear part reads them."""
    with torch.no_grad():
        feats, weights = (t.numpy() for t in model.tfidf(torch.as_tensor(ids)))
    rows = np.repeat(np.arange(len(feats)), feats.shape[1])
    matrix = sparse.csr_matrix((weights.ravel().astype(np.float64), (rows, feats.ravel())),
                               shape=(len(feats), model.linear.num_embeddings))
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return matrix


def fit_linear_part(model: HybridTextCNN, ids: np.ndarray, y: np.ndarray, n_classes: int, *, seed: int) -> None:
    """Keep the training posts' bigrams and IDF in the model, then fit its linear part as a class-balanced
    logistic regression on its TF-IDF (the same estimator as the baseline, on the same kind of features)."""
    t = torch.as_tensor(ids).long()
    keys = model.bigram_keys(t)
    bigrams = torch.unique(keys[keys >= 0])
    model.bigrams = bigrams
    model.idf = torch.ones(model.vocab_size + len(bigrams))
    model.linear = nn.EmbeddingBag(model.vocab_size + len(bigrams), n_classes, mode="sum", padding_idx=0)
    feats, _ = model.tfidf(t)
    present = np.unique(np.stack([np.repeat(np.arange(len(t)), feats.shape[1]), feats.numpy().ravel()], 1), axis=0)
    df = np.bincount(present[:, 1], minlength=model.linear.num_embeddings)
    model.idf = torch.as_tensor(np.log((1 + len(t)) / (1 + df)) + 1, dtype=torch.float32)
    fitted = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    fitted.fit(tfidf_design(model, ids), y)
    coef, intercept = np.zeros((n_classes, model.linear.num_embeddings)), np.zeros(n_classes)
    if n_classes == 2 and len(fitted.classes_) == 2:
        coef[1], intercept[1] = fitted.coef_[0], fitted.intercept_[0]
    else:
        coef[fitted.classes_], intercept[fitted.classes_] = fitted.coef_, fitted.intercept_
    with torch.no_grad():
        model.linear.weight.copy_(torch.as_tensor(coef.T, dtype=torch.float32))
        model.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))


def fit_hybrid(ids: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, vocab_size: int,
               n_classes: int, *, epochs: int, seed: int) -> tuple[HybridTextCNN, dict]:
    """The hybrid model and its history: the CNN part's losses per epoch, ``beta`` and the validation macro F1
    of every ``beta`` tried (0 is the linear part alone)."""
    seed_everything(seed)
    model = HybridTextCNN(vocab_size, n_classes, 0)
    fit_linear_part(model, ids[train], y[train], n_classes, seed=seed)
    counts = np.bincount(y[train], minlength=n_classes).astype(np.float32)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes, dtype=torch.float32)
    history = train_model(_CNNPart(model), (ids[train], y[train]), (ids[val], y[val]),
                          loss_fn=nn.CrossEntropyLoss(weight=weights),
                          config=TrainConfig(epochs=epochs, seed=seed, batch_size=64, patience=4))
    scores = {}
    for beta in BETAS:
        model.beta.fill_(beta)
        proba = predict_proba(model, ids[val])
        scores[beta] = classification_metrics(y[val], proba.argmax(1), proba)["macro_f1"]
    best = max(BETAS, key=lambda b: (round(scores[b], 6), -b))
    model.beta.fill_(best)
    return model.eval(), {**history, "beta": best, "beta_val_macro_f1": {str(b): s for b, s in scores.items()}}

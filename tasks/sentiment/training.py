"""Fitting the hybrid text model: the linear part as a logistic regression on its own TF-IDF, the CNN part on the
same training posts with early stopping on validation, then how much the CNN adds, chosen on validation."""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from torch import nn

from models.card import ModelCard
from models.sentiment import HybridTextCNN
from models.train import CNNPart, TrainConfig, logistic_weights, predict_proba, seed_everything, train_model
from models.tuning import split_values
from tasks.insight import set_deep_share
from tasks.metrics import classification_metrics
from tasks.sentiment import features

BETAS = (0.0, 0.25, 0.5, 1.0, 2.0)
SUBWORD_SLOTS = 32  # character n-grams kept per token: all of them for words up to 8 letters


def post_length(token_lists: list[list[str]]) -> int:
    """Tokens per post the CNN part reads: the 99th percentile of the training posts, between 8 and 512."""
    lengths = [len(tokens) for tokens in token_lists]
    return int(np.clip(np.ceil(np.percentile(lengths, 99)) if lengths else 8, 8, 512))


def model_ids(token_lists: list[list[str]], vocabulary: dict[str, int], card: ModelCard) -> np.ndarray:
    """Token ids as the model of ``card`` reads them: every token of each post (its CNN part cuts its own
    ``cnn_tokens``), or the first ``max_tokens`` for a model whose both parts read only those."""
    whole = "cnn_tokens" in card.architecture.kwargs
    return whole_posts(token_lists, vocabulary) if whole else \
        features.token_ids(token_lists, vocabulary, card.parameters["max_tokens"])


def whole_posts(token_lists: list[list[str]], vocabulary: dict[str, int]) -> np.ndarray:
    """(n, longest post) token ids: nothing cut."""
    return features.token_ids(token_lists, vocabulary, max((len(t) for t in token_lists), default=1) or 1)


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


def subword_table(vocabulary: dict[str, int], texts: list[str], first: int) -> tuple[np.ndarray, np.ndarray]:
    """(token id -> its character 2- to 5-gram features, numbered from ``first``; the n-grams' IDF): the n-grams
    inside the words of at least two training posts, as sklearn's ``char_wb`` analyzer cuts them."""
    table = np.zeros((len(vocabulary) + 2, SUBWORD_SLOTS), dtype=np.int32)
    try:
        chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True).fit(texts)
    except ValueError:  # no n-gram in two posts
        return table[:, :0], np.zeros(0)
    cut = chars.build_analyzer()
    for token, i in vocabulary.items():
        grams = [first + chars.vocabulary_[g] for g in cut(token) if g in chars.vocabulary_][:SUBWORD_SLOTS]
        table[i, : len(grams)] = grams
    return table, chars.idf_


def fit_linear_part(model: HybridTextCNN, ids: np.ndarray, y: np.ndarray, vocabulary: dict[str, int], *,
                    subwords: bool, seed: int) -> None:
    """Keep the training posts' bigrams, character n-grams (with ``subwords``) and IDF in the model, then fit its
    linear part as a class-balanced logistic regression on its TF-IDF (the baseline's estimator)."""
    t = torch.as_tensor(ids).long()
    n_classes = model.bias.numel()
    keys = model.bigram_keys(t)
    model.bigrams = torch.unique(keys[keys >= 0])
    n_words = model.vocab_size + len(model.bigrams)
    feats = model.word_features(t).numpy()
    present = np.unique(np.stack([np.repeat(np.arange(len(t)), feats.shape[1]), feats.ravel()], 1), axis=0)
    word_idf = np.log((1 + len(t)) / (1 + np.bincount(present[:, 1], minlength=n_words))) + 1
    names = {i: token for token, i in vocabulary.items()}
    texts = [" ".join(names[i] for i in row if i > 1) for row in ids] if subwords else []
    table, char_idf = subword_table(vocabulary, texts, n_words)
    model.subwords = torch.as_tensor(table)
    model.idf = torch.as_tensor(np.concatenate([word_idf, char_idf]), dtype=torch.float32)
    model.linear = nn.EmbeddingBag(len(model.idf), n_classes, mode="sum", padding_idx=0)
    fitted = LogisticRegression(max_iter=2000, class_weight="balanced", random_state=seed)
    fitted.fit(tfidf_design(model, ids), y)
    coef, intercept = logistic_weights(fitted, n_classes)
    with torch.no_grad():
        model.linear.weight.copy_(torch.as_tensor(coef.T, dtype=torch.float32))
        model.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))


def fit_hybrid(ids: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, vocabulary: dict[str, int],
               n_classes: int, *, cnn_tokens: int, epochs: int, seed: int,
               values: dict | None = None) -> tuple[HybridTextCNN, dict]:
    """The hybrid model and its history: whether the linear part reads character n-grams besides words (chosen
    on the validation posts, as is everything here), the CNN part's losses per epoch, ``beta`` and the
    validation macro F1 of every choice tried. ``values`` (from --tune) set the CNN part's arguments and the
    learning rate."""
    model_kwargs, train_kwargs = split_values(values)
    seed_everything(seed)
    linear, linear_scores = {}, {}
    for subwords in (True, False):
        linear[subwords] = HybridTextCNN(len(vocabulary) + 2, n_classes, 0, cnn_tokens=cnn_tokens, **model_kwargs)
        fit_linear_part(linear[subwords], ids[train], y[train], vocabulary, subwords=subwords, seed=seed)
        linear[subwords].beta.fill_(0.0)
        linear_scores[subwords] = _macro_f1(linear[subwords], ids[val], y[val])
    use_subwords = max((True, False), key=lambda s: (round(linear_scores[s], 6), s))
    model = linear[use_subwords]
    counts = np.bincount(y[train], minlength=n_classes).astype(np.float32)
    weights = torch.tensor(counts.sum() / np.maximum(counts, 1) / n_classes, dtype=torch.float32)
    history = train_model(CNNPart(model), (ids[train], y[train]), (ids[val], y[val]),
                          loss_fn=nn.CrossEntropyLoss(weight=weights),
                          config=TrainConfig(epochs=epochs, seed=seed, batch_size=64, patience=4, **train_kwargs))
    best, scores = set_deep_share(model, model.beta, BETAS, ids[val], y[val], seed=seed)
    return model.eval(), {**history, "subwords": use_subwords, "beta": best,
                          "linear_val_macro_f1": {"words and characters": linear_scores[True],
                                                  "words": linear_scores[False]},
                          "beta_val": scores}


def _macro_f1(model: nn.Module, ids: np.ndarray, y: np.ndarray) -> float:
    proba = predict_proba(model, ids)
    return classification_metrics(y, proba.argmax(1), proba)["macro_f1"]

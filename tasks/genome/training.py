"""Splits, model inputs and baselines for sequence classification (plain functions on arrays)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from models.train import logistic_weights
from tasks.genome import encode

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)  # the CNN's share of a wide model's logits, chosen on validation


def model_input(codes: np.ndarray, *, encoding: str, k: int) -> np.ndarray:
    """What the network reads: k-mer token ids (``kmer``), one-hot bases (``onehot``) or counts (``counts``)."""
    if encoding == "kmer":
        return encode.kmer_tokens(codes, k)
    if encoding == "onehot":
        return encode.one_hot(codes)
    if encoding == "counts":
        return encode.kmer_counts(encode.kmer_tokens(codes, k), k).astype(np.float32)
    raise ValueError(f"unknown encoding {encoding!r}; choose kmer, onehot or counts")


def with_reverse_complements(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training augmentation: every sequence again as its reverse complement, with the same label."""
    return np.concatenate([codes, encode.reverse_complement(codes)]), np.concatenate([labels, labels])


def onehot_features(codes: np.ndarray) -> np.ndarray:
    """Positional one-hot, flattened: the first baseline's features."""
    return encode.one_hot(codes).reshape(len(codes), -1)


def count_features(counts: np.ndarray) -> np.ndarray:
    """k-mer frequencies (counts over the sequence's k-mers): the second baseline's features."""
    counts = counts.astype(np.float32)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def fit_logreg(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> LogisticRegression:
    return LogisticRegression(max_iter=2000, C=0.5, random_state=seed).fit(x, y)


def fit_wide_part(model: nn.Module, codes: np.ndarray, y: np.ndarray, *, seed: int = 0) -> None:
    """Fit a wide model's linear part as the positional one-hot baseline's logistic regression, on the same
    records with the same settings, so that the model with ``mix`` 0 is that baseline."""
    coef, intercept = logistic_weights(fit_logreg(onehot_features(codes), y, seed=seed), model.wide.out_features)
    with torch.no_grad():
        model.wide.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        model.wide.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))


def sliding_windows(lengths: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(record index, start) of windows along each record; a record shorter than a window gets one."""
    rec, starts = [], []
    for i, n in enumerate(lengths):
        s = np.arange(0, max(int(n) - window, 0) + 1, stride)
        if s.size == 0 or s[-1] + window < n:
            s = np.append(s, max(int(n) - window, 0))
        rec.append(np.full(s.size, i))
        starts.append(s)
    return np.concatenate(rec), np.concatenate(starts)


def code_strings(codes: np.ndarray) -> list[str]:
    """Base codes back to text: A/C/G/T, N for unknown, '-' for padding."""
    letters = np.frombuffer(b"ACGTN-", dtype=np.uint8)
    return [row.tobytes().decode() for row in letters[np.minimum(codes, 5)]]


def per_base_importance(token_importance: np.ndarray, k: int) -> np.ndarray:
    """(n, L) importance per base from (n, L - k + 1) importance per k-mer: each base gets the mean share of the
    k-mers that cover it."""
    kernel = np.ones(k) / k
    return np.stack([np.convolve(row, kernel, mode="full") for row in np.atleast_2d(token_importance)])


def motif_spans(sequence: str, motifs: dict[str, tuple[str, ...]], *,
                mismatches: int = 1) -> list[tuple[int, int, str]]:
    """(start, end, name) of every place a motif occurs with at most ``mismatches`` differences."""
    seq = np.frombuffer(sequence.upper().encode(), dtype=np.uint8)
    spans = []
    for name, patterns in motifs.items():
        for pattern in patterns:
            if len(pattern) > len(seq):
                continue
            windows = np.lib.stride_tricks.sliding_window_view(seq, len(pattern))
            diffs = (windows != np.frombuffer(pattern.encode(), dtype=np.uint8)).sum(axis=1)
            spans += [(int(s), int(s) + len(pattern), name) for s in np.flatnonzero(diffs <= mismatches)]
    return sorted(spans)

"""Sequence classifiers: a position-aware 1D CNN (the default), a 1D CNN with global pooling over k-mer
embeddings or one-hot bases, and the 2D k-mer CNN."""

from __future__ import annotations

import math

import torch
from torch import nn


class SeqCNN1D(nn.Module):
    """Embedding (k-mer tokens) or one-hot (L x 4) input, two convolutions, global max pooling, a dense head.

    Global max pooling makes the prediction independent of where a motif sits; position-defined classes
    are still learnt because sequences are padded to one length and the first layer sees absolute context.
    """

    def __init__(self, n_classes: int, *, encoding: str = "kmer", vocab_size: int = 4**4 + 2, embed_dim: int = 32,
                 channels: int = 64, kernel: int = 9, dropout: float = 0.2):
        super().__init__()
        self.encoding = encoding
        in_channels = embed_dim if encoding == "kmer" else 4
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if encoding == "kmer" else None
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel, padding=kernel // 2), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, kernel, padding=kernel // 2), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x.long()).transpose(1, 2) if self.embed is not None else x.transpose(1, 2)
        return self.head(self.conv(x).amax(dim=2))


class PosCNN1D(nn.Module):
    """Position-aware CNN, the default: two convolutions, then the feature maps averaged in ``bins`` windows along
    the sequence and a dense layer over those positions, beside a global max pool. The bins learn where a motif
    sits (promoters, splice sites); the max pool learns that it is there at all (binding sites anywhere).

    With ``wide`` (one-hot input only) a linear layer over the flattened one-hot bases sits beside the CNN, fitted
    as a logistic regression, and the logits are ``(1 - mix) * linear + mix * cnn`` with ``mix`` chosen on
    validation: a hundred sequences are too few for a CNN alone, a hundred thousand leave the linear part little
    to add."""

    def __init__(self, n_classes: int, *, length: int, encoding: str = "onehot", vocab_size: int = 4**4 + 2,
                 embed_dim: int = 32, channels: int = 64, kernel: int = 9, bins: int = 16, dropout: float = 0.3,
                 wide: bool = False):
        super().__init__()
        if wide and encoding != "onehot":
            raise ValueError("the wide linear part reads one-hot bases; use encoding='onehot' or wide=False")
        self.wide = nn.Linear(4 * length, n_classes) if wide else None
        if wide:
            self.register_buffer("mix", torch.ones(()))
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0) if encoding == "kmer" else None
        in_channels = embed_dim if encoding == "kmer" else 4
        self.conv = nn.Sequential(
            nn.Conv1d(in_channels, channels, kernel, padding=kernel // 2), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU(),
        )
        self.bins = nn.AdaptiveAvgPool1d(max(1, min(bins, length // 4)))
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(channels * (self.bins.output_size + 1), n_classes))

    def cnn_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x.long()).transpose(1, 2) if self.embed is not None else x.transpose(1, 2)
        h = self.conv(x)
        return self.head(torch.cat([self.bins(h).flatten(1), h.amax(dim=2)], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.wide is None:
            return self.cnn_logits(x)
        return (1 - self.mix) * self.wide(x.flatten(1)) + self.mix * self.cnn_logits(x)


class KmerCNN2D(nn.Module):
    """The seed's 2D k-mer CNN: a sequence's k-mer frequencies laid out as a 2^k x 2^k image."""

    def __init__(self, n_classes: int, *, k: int = 4, channels: int = 32, dropout: float = 0.2):
        super().__init__()
        if k % 2:
            raise ValueError("the 2D k-mer CNN needs an even k, so 4^k counts form a square image")
        self.side = int(math.isqrt(4**k))
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * 16, n_classes))

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        x = counts.float()
        x = x / x.sum(dim=1, keepdim=True).clamp(min=1)
        return self.head(self.features(x.view(-1, 1, self.side, self.side)))

"""The text CNN: embedding, parallel 1D convolutions, global max pooling, a dense head."""

from __future__ import annotations

import torch
from torch import nn


class TextCNN(nn.Module):
    def __init__(self, vocab_size: int, n_classes: int, *, embed_dim: int = 64, channels: int = 64,
                 kernels: tuple[int, ...] = (2, 3, 4), dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in kernels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * len(kernels), n_classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids.long()).transpose(1, 2)
        return self.head(torch.cat([torch.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1))


class HybridTextCNN(nn.Module):
    """TF-IDF features and a text CNN's pooled features into one linear decision, the default.

    The linear part reads two TF-IDF blocks (sublinear term frequency, each L2-normed, together of unit norm):
    the post's word unigrams and bigrams, and the character 2- to 5-grams inside its words (``subwords``: a
    table from each vocabulary token to its n-gram features). Both are computed inside the model from the token
    ids, with the training posts' bigram list, n-gram table and IDF kept as buffers, and fitted first as a
    logistic regression. The CNN part learns its own features on the same training posts, and ``beta``, chosen
    on the validation posts, says how much its logits add. A few thousand posts are too few for a CNN alone to
    match a linear model on TF-IDF; beside one it can add what a bag of words misses.

    The linear part reads every token of a post, as TF-IDF does; the CNN part reads the first ``cnn_tokens``.
    """

    def __init__(self, vocab_size: int, n_classes: int, n_bigrams: int, n_subwords: int = 0, subword_slots: int = 0,
                 *, embed_dim: int = 64, channels: int = 64, kernels: tuple[int, ...] = (2, 3, 4),
                 dropout: float = 0.5, cnn_tokens: int | None = None):
        super().__init__()
        self.vocab_size, self.cnn_tokens = vocab_size, cnn_tokens
        n_features = vocab_size + n_bigrams + n_subwords
        self.register_buffer("bigrams", torch.zeros(n_bigrams, dtype=torch.long))
        self.register_buffer("subwords", torch.zeros(vocab_size, subword_slots, dtype=torch.int32))
        self.register_buffer("idf", torch.ones(n_features))
        self.register_buffer("beta", torch.ones(()))
        self.linear = nn.EmbeddingBag(n_features, n_classes, mode="sum", padding_idx=0)
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, channels, k, padding=k // 2) for k in kernels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels * len(kernels), n_classes))

    def bigram_keys(self, ids: torch.Tensor) -> torch.Tensor:
        """One integer per pair of neighbouring known tokens, -1 where either is padding or unknown."""
        a, b = ids[:, :-1].long(), ids[:, 1:].long()
        return torch.where((a > 1) & (b > 1), a * self.vocab_size + b, -1)

    def word_features(self, ids: torch.Tensor) -> torch.Tensor:
        """The feature index of every token and known bigram of each post (0 for none)."""
        ids = ids.long()
        keys = self.bigram_keys(ids)
        if len(self.bigrams):
            at = torch.searchsorted(self.bigrams, keys.clamp(min=0)).clamp(max=len(self.bigrams) - 1)
            known = (keys >= 0) & (self.bigrams[at] == keys)
        else:
            at, known = torch.zeros_like(keys), torch.zeros_like(keys, dtype=torch.bool)
        return torch.cat([torch.where(ids > 1, ids, 0), torch.where(known, self.vocab_size + at, 0)], dim=1)

    def tfidf(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature index, weight) per word, bigram and character n-gram of each post: summed per post, its
        TF-IDF vector."""
        blocks = [self.word_features(ids)]
        if self.subwords.shape[1]:
            blocks.append(self.subwords[ids.long()].flatten(1).long())
        weights = [_tfidf_weights(feats, self.idf) / len(blocks) ** 0.5 for feats in blocks]
        return torch.cat(blocks, dim=1), torch.cat(weights, dim=1)

    def linear_logits(self, ids: torch.Tensor) -> torch.Tensor:
        feats, weights = self.tfidf(ids)
        return self.linear(feats, per_sample_weights=weights) + self.bias

    def cnn_logits(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids[:, :self.cnn_tokens].long()).transpose(1, 2)
        return self.head(torch.cat([torch.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.linear_logits(ids) + self.beta * self.cnn_logits(ids)

    def linear_attributions(self, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Each token's exact share of the linear part's logit for ``target`` (n, length): its word, half of each
        bigram it is in, and its character n-grams. The CNN part's share comes from integrated gradients."""
        length = ids.shape[1]
        with torch.no_grad():
            feats, weights = self.tfidf(ids)
            share = self.linear.weight[feats, target.long()[:, None]] * weights
            per_token = share[:, :length].clone()
            bigram = share[:, length:2 * length - 1] / 2
            per_token[:, :-1] += bigram
            per_token[:, 1:] += bigram
            if self.subwords.shape[1]:
                per_token += share[:, 2 * length - 1:].reshape(len(ids), length, -1).sum(dim=-1)
        return per_token


def _tfidf_weights(feats: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """Per entry, the share of its feature's sublinear TF-IDF in its row's L2-normed vector (0 for index 0)."""
    count = _occurrences(feats)
    weight = idf[feats] * (feats > 0)
    tf = 1 + torch.log(count)
    norm = (weight.square() * tf.square() / count).sum(dim=1, keepdim=True).sqrt().clamp(min=1e-12)
    return weight * tf / count / norm


def _occurrences(feats: torch.Tensor) -> torch.Tensor:
    """How often each entry's value occurs in its row, for every entry."""
    ordered, order = feats.sort(dim=1)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(dim=1) - 1
    sizes = torch.zeros_like(group).scatter_add_(1, group, torch.ones_like(group))
    return torch.empty_like(group).scatter_(1, order, sizes.gather(1, group)).float()

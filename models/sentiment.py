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

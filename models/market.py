"""The LSTM forecaster of the seed: an LSTM layer over a window and a dense output."""

from __future__ import annotations

import torch
from torch import nn


class LSTMForecaster(nn.Module):
    """``head_dropout`` before the output layer makes Monte Carlo dropout intervals possible."""

    def __init__(self, n_features: int, *, hidden: int = 32, layers: int = 1, dropout: float = 0.0,
                 head_dropout: float = 0.0):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.drop = nn.Dropout(head_dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.float())
        return self.head(self.drop(out[:, -1])).squeeze(-1)

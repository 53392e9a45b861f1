"""Every model class a card can name, and the one way to build a fresh model from a card."""

from __future__ import annotations

from torch import nn

from models.genome import KmerCNN2D, SeqCNN1D
from models.market import LSTMForecaster
from models.satellite import PixelFCN
from models.sentiment import TextCNN
from tasks.errors import BadInputError

ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (PixelFCN, SeqCNN1D, KmerCNN2D, TextCNN, LSTMForecaster)}


def build(card: dict) -> nn.Module:
    """A fresh, untrained model of the architecture a card names (``{"class": ..., "kwargs": {...}}``)."""
    arch = card["architecture"]
    if arch["class"] not in ARCHITECTURES:
        raise BadInputError(f"model {card.get('name')} {card.get('version')}: unknown architecture {arch['class']!r}; "
                            f"this tessera knows {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch["class"]](**arch["kwargs"])

"""Every model class a card can name, and the one way to build a fresh model from a card."""

from __future__ import annotations

from torch import nn

from models.card import Architecture, ModelCard
from models.genome import KmerCNN2D, PosCNN1D, SeqCNN1D
from models.market import LSTMForecaster
from models.satellite import PixelFCN, UNet
from models.sentiment import HybridTextCNN, TextCNN
from tasks.errors import BadInputError

ARCHITECTURES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (UNet, PixelFCN, PosCNN1D, SeqCNN1D, KmerCNN2D, HybridTextCNN, TextCNN, LSTMForecaster)}


def build(spec: ModelCard | Architecture) -> nn.Module:
    """A fresh, untrained model of the architecture a card (or an architecture alone) names."""
    arch = spec.architecture if isinstance(spec, ModelCard) else spec
    if arch.name not in ARCHITECTURES:
        model = f"model {spec.name} {spec.version}" if isinstance(spec, ModelCard) else "architecture"
        raise BadInputError(f"{model}: unknown architecture {arch.name!r}; "
                            f"this tessera knows {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch.name](**arch.kwargs)

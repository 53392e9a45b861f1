"""A small fully-convolutional network: a class for every pixel, for any image size."""

from __future__ import annotations

from torch import nn


def _conv(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PixelFCN(nn.Module):
    """Three 3x3 convolutions (the last dilated) and a 1x1 head; receptive field 9 x 9 pixels."""

    halo = 4

    def __init__(self, in_bands: int, n_classes: int, *, width: int = 32, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(*_conv(in_bands, width), *_conv(width, width), *_conv(width, width, dilation=2),
                                 nn.Dropout2d(dropout), nn.Conv2d(width, n_classes, 1))

    def forward(self, x):
        return self.net(x)

"""Fully-convolutional networks for a class per pixel, for any image size: a small U-Net (the default) and the
three-layer PixelFCN.

The U-Net is written here rather than taken from segmentation-models-pytorch: smp builds its encoders with timm,
which imports torchvision, and the only torchvision wheel these machines can install is built against CUDA torch
and does not load beside the CPU torch build (``operator torchvision::nms does not exist``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class PixelFCN(nn.Module):
    """Three 3x3 convolutions (the last dilated) and a 1x1 head; receptive field 9 x 9 pixels, so tiles that
    overlap by ``halo`` (twice the receptive radius) join without a seam."""

    halo = 8

    def __init__(self, in_bands: int, n_classes: int, *, width: int = 32, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(*_conv(in_bands, width), *_conv(width, width), *_conv(width, width, dilation=2),
                                 nn.Dropout2d(dropout), nn.Conv2d(width, n_classes, 1))

    def forward(self, x):
        return self.net(x)


class UNet(nn.Module):
    """An encoder-decoder with skip connections: ``depth`` levels of two 3x3 convolutions and a 2x2 max-pool,
    the channels doubling per level from ``width``, then bilinear upsampling joined with the encoder's features
    at each level. Inputs of any size: padded by reflection to a multiple of 2**depth, the output cropped back.

    ``halo`` is the receptive radius (measured: 54 pixels at depth 3, 26 at depth 2) rounded up to a multiple of
    2**depth, so tiles overlapping by it keep the pooling grid aligned and join without a seam."""

    def __init__(self, in_bands: int, n_classes: int, *, width: int = 32, depth: int = 3, dropout: float = 0.1):
        super().__init__()
        widths = [width * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList(nn.Sequential(*_conv(cin, cout), *_conv(cout, cout))
                                  for cin, cout in zip([in_bands] + widths[:-1], widths, strict=True))
        self.up = nn.ModuleList(nn.Sequential(*_conv(widths[level] + widths[level + 1], widths[level]),
                                              *_conv(widths[level], widths[level]))
                                for level in range(depth))
        self.drop = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(width, n_classes, 1)
        self.depth = depth
        self.halo = 7 * 2 ** depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        step = 2 ** self.depth
        pad_h, pad_w = -h % step, -w % step
        if pad_h or pad_w:
            mode = "reflect" if min(h, w) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for level in reversed(range(self.depth)):
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[level](torch.cat([skips[level], x], dim=1))
        return self.head(self.drop(x))[..., :h, :w]

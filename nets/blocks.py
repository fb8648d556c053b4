"""Building blocks of the DCT-input ResNets (Gueguen et al., NeurIPS 2018, section 3).

Bottlenecks are ResNet v1 as in the authors' diagrams (``../shared/docs/paper-diagrams``):
the stride sits on the first 1x1 convolution, conv-BN-ReLU as in torchvision's ResNet.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn


def conv_bn(in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1) -> list[nn.Module]:
    """Conv (no bias) + BN. An even kernel gets Keras-style "same" padding (one extra
    row/column at the bottom/right), as the authors' Keras models had for k=2."""
    layers: list[nn.Module] = []
    if kernel % 2 == 0:
        layers.append(nn.ZeroPad2d((kernel // 2 - 1, kernel // 2, kernel // 2 - 1, kernel // 2)))
        padding = 0
    else:
        padding = kernel // 2
    layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False), nn.BatchNorm2d(out_channels)]
    return layers


class Bottleneck(nn.Module):
    """[a, b, c] block: 1x1 conv to ``mid`` (with the stride), ``kernel`` x ``kernel`` conv
    to ``mid``, 1x1 conv to ``out``; projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, mid: int, out: int, stride: int = 1, kernel: int = 3):
        super().__init__()
        self.kernel = kernel
        self.branch = nn.Sequential(
            *conv_bn(in_channels, mid, 1, stride), nn.ReLU(inplace=True),
            *conv_bn(mid, mid, kernel), nn.ReLU(inplace=True),
            *conv_bn(mid, out, 1),
        )
        self.shortcut = (
            nn.Sequential(*conv_bn(in_channels, out, 1, stride)) if stride != 1 or in_channels != out else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.branch[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


def stage(in_channels: int, widths: tuple[int, int], blocks: int, stride: int = 1,
          kernels: Sequence[int] | None = None) -> nn.Sequential:
    """``blocks`` bottlenecks [mid, mid, out]; the first takes the stride. ``kernels``:
    the middle kernel of each block (RFA stages: 1, 2, 3), default 3."""
    mid, out = widths
    kernels = list(kernels or [3] * blocks)
    if len(kernels) != blocks:
        raise ValueError(f"{blocks} blocks need {blocks} kernels, got {kernels}")
    layers = OrderedDict()
    for i, k in enumerate(kernels):
        layers[chr(ord("a") + i)] = Bottleneck(in_channels if i == 0 else out, mid, out, stride if i == 0 else 1, k)
    return nn.Sequential(layers)


def named(*pairs) -> nn.Sequential:
    """nn.Sequential with names (the stage names of the diagrams)."""
    return nn.Sequential(OrderedDict(pairs))

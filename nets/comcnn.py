"""ComCNN and RecCNN around a standard codec (Jiang et al., "An End-to-End Compression
Framework Based on Convolutional Neural Networks", IEEE TCSVT 2017, section III).

ComCNN turns an image into a compact one of half its size (3 layers: 64 3x3 filters,
then 64 with stride 2 and batch norm, then 3); a standard codec (JPEG) codes that; RecCNN
(20 layers of 64 3x3 filters with batch norm, residual learning) restores the image from
the decoded compact one upscaled (bicubic). The codec is not differentiable: training
here runs it as JPEG-DL's differentiable JPEG layer (:class:`nets.jpeg_dl.JPEGLayer`, the
soft quantizer at the quality it is evaluated at), where the paper alternates between the
two networks; evaluation runs the real codec (Pillow's libjpeg) and counts the real file's
bytes.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .jpeg_dl import JPEGLayer


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ComCNN(nn.Module):
    """Image (N, 3, H, W) in [0, 1] -> compact image (N, 3, H/2, W/2) in [0, 1].

    One departure from the paper: the layers learn a residual over the image averaged
    2x2 (the last layer starts at zero), so that training starts from a plain
    downscale, as RecCNN starts from the plain upscale, instead of from a gray image:
    the minutes of CPU training here would not get past that start otherwise.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(inplace=True), conv_bn_relu(width, width, 2),
                                  nn.Conv2d(width, 3, 3, 1, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.avg_pool2d(x, 2, ceil_mode=True) + self.body(x)).clamp(0, 1)


class RecCNN(nn.Module):
    """Upscaled decoded compact image -> the image: ``input + residual`` (``depth`` layers)."""

    def __init__(self, depth: int = 20, width: int = 64):
        super().__init__()
        layers = [nn.Conv2d(3, width, 3, 1, 1), nn.ReLU(inplace=True)]
        layers += [conv_bn_relu(width, width) for _ in range(depth - 2)]
        layers.append(nn.Conv2d(width, 3, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return upscaled + self.body(upscaled)


def upscale(compact: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(compact, size=size, mode="bicubic", align_corners=False)


class CompressionFramework(nn.Module):
    """ComCNN -> JPEG at ``quality`` (4:4:4) -> bicubic upscaling -> RecCNN.

    ``forward`` is the training path (the differentiable JPEG layer); :meth:`encode` and
    :meth:`decode` are the real codec's, with bytes in between.
    """

    def __init__(self, quality: int = 15, depth: int = 20, width: int = 64, proxy: str = "soft",
                 hardness: float | None = 1.0):
        super().__init__()
        self.quality = quality
        self.com = ComCNN(width)
        self.rec = RecCNN(depth, width)
        # hardness: alpha = h / Q^2, soft enough at quality 10-20's steps (20-80) for gradients
        # to reach ComCNN; JPEG-DL's fixed alpha = 5 would round hard at such steps.
        self.jpeg = JPEGLayer(mean=None, std=None, quality=quality, proxy=proxy, hardness=hardness)
        for p in self.jpeg.parameters():  # the codec's tables are the real codec's: fixed
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compact = self.com(x)
        decoded = self.jpeg(compact)  # the compact image through differentiable JPEG
        return self.rec(upscale(decoded, x.shape[-2:]))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> bytes:
        """One image (1, 3, H, W) -> the compact image's JPEG (Pillow, 4:4:4)."""
        from PIL import Image

        compact = self.com(x)[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        out = io.BytesIO()
        Image.fromarray(compact).save(out, "JPEG", quality=self.quality, subsampling=0)
        return out.getvalue()

    @torch.no_grad()
    def decode(self, data: bytes, size: tuple[int, int]) -> torch.Tensor:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            compact = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
        return self.rec(upscale(compact.to(next(self.parameters()).device), size)).clamp(0, 1)

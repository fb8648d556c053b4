"""Pixels to the batch contract in torch, on any device and differentiable.

Used by the JPEG layer in front of RGB networks (``nets.JPEGLayer``) and by the loader
backends that decode pixels on a GPU (``nvjpeg``, ``dali``). The maths (DCT matrix,
YCbCr weights) is :mod:`dctload.coefficients`'; this module only lays it out as the
contract's channels ``8 * v + u``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .coefficients import LEVEL_SHIFT, blockwise_dct, blockwise_idct, rgb_to_ycbcr

#: torchvision's ImageNet normalization of RGB in 0..1 (RGB networks' input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_coefficients(samples: torch.Tensor) -> torch.Tensor:
    """JPEG-unit coefficients of 8-bit samples (the DCT of ``samples - 128``):
    (..., H, W) -> (..., 64, H/8, W/8)."""
    return blockwise_dct(samples - LEVEL_SHIFT).movedim(-1, -3)


def from_coefficients(coefs: torch.Tensor) -> torch.Tensor:
    """Samples (unrounded, unclamped) from JPEG-unit coefficients: (..., 64, hb, wb) -> (..., 8 hb, 8 wb)."""
    return blockwise_idct(coefs.movedim(-3, -1)) + LEVEL_SHIFT


def pixels_to_batch(images: torch.Tensor, color: str = "rgb") -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, S_h, S_w) RGB or YCbCr samples in 0..255 (any dtype, any device) -> ``(y, cbcr)``.

    Chroma goes to S/2 with the antialiased bilinear filter that the CPU path uses
    (from the full-resolution chroma a pixel decoder gives). Sides must be multiples of 16.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    b, _, h, w = images.shape
    if h % 16 or w % 16:
        raise ValueError(f"image size {h}x{w} is not a multiple of 16 (whole 4:2:0 MCUs)")
    images = images.float()
    if color == "rgb":
        images = rgb_to_ycbcr(images, axis=-3)
    elif color != "ycbcr":
        raise ValueError(f'color must be "rgb" or "ycbcr", not {color!r}')
    y = to_coefficients(images[:, 0])
    chroma = F.interpolate(images[:, 1:], size=(h // 2, w // 2), mode="bilinear", antialias=True, align_corners=False)
    cbcr = to_coefficients(chroma).reshape(b, 2 * 64, h // 16, w // 16)
    return y, cbcr

"""Pixels and blockwise DCT coefficients in torch, on any device and differentiable.

The torch counterparts of :mod:`dctload.coefficients`' pixel conversions (same DCT
matrix, same YCbCr weights): used by the JPEG layer in front of RGB networks
(``nets.JPEGLayer``) and by the GPU paths that turn decoded pixels into the batch
contract. Coefficient layout is the contract's: channel ``8 * v + u``.
"""

from __future__ import annotations

import numpy as np
import torch

from . import coefficients
from .coefficients import BLOCK, LEVEL_SHIFT

#: torchvision's ImageNet normalization of RGB in 0..1 (RGB networks' input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _constant(array, like: torch.Tensor) -> torch.Tensor:
    dtype = like.dtype if like.is_floating_point() else torch.float32
    return torch.tensor(array, dtype=dtype, device=like.device)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB in 0..255 -> JFIF full-range YCbCr, same layout."""
    matrix = _constant(coefficients.YCBCR_FROM_RGB, rgb)
    offset = _constant(coefficients.YCBCR_OFFSET, rgb)
    return torch.einsum("ij,...jhw->...ihw", matrix, rgb) + offset[:, None, None]


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (no rounding, no clamping)."""
    inverse = _constant(np.linalg.inv(coefficients.YCBCR_FROM_RGB), ycbcr)
    offset = _constant(coefficients.YCBCR_OFFSET, ycbcr)
    return torch.einsum("ij,...jhw->...ihw", inverse, ycbcr - offset[:, None, None])


def blockwise_dct(planes: torch.Tensor) -> torch.Tensor:
    """Orthonormal 8x8 DCT-II of (..., H, W) planes (sides multiples of 8) ->
    (..., 64, H/8, W/8). Level shifting is the caller's (see :func:`to_coefficients`)."""
    *lead, h, w = planes.shape
    if h % BLOCK or w % BLOCK:
        raise ValueError(f"planes of {h}x{w} are not whole 8x8 blocks")
    d = _constant(coefficients.dct_matrix(), planes)
    blocks = planes.reshape(*lead, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    coefs = torch.einsum("vi,...aibj,uj->...vuab", d, blocks, d)
    return coefs.reshape(*lead, BLOCK * BLOCK, h // BLOCK, w // BLOCK)


def blockwise_idct(coefs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`blockwise_dct`: (..., 64, hb, wb) -> (..., 8 hb, 8 wb)."""
    *lead, k, hb, wb = coefs.shape
    if k != BLOCK * BLOCK:
        raise ValueError(f"expected 64 coefficients per block, got {k}")
    d = _constant(coefficients.dct_matrix(), coefs)
    blocks = torch.einsum("vi,...vuab,uj->...aibj", d, coefs.reshape(*lead, BLOCK, BLOCK, hb, wb), d)
    return blocks.reshape(*lead, hb * BLOCK, wb * BLOCK)


def to_coefficients(samples: torch.Tensor) -> torch.Tensor:
    """JPEG-unit coefficients of 8-bit samples: the DCT of ``samples - 128``."""
    return blockwise_dct(samples - LEVEL_SHIFT)


def from_coefficients(coefs: torch.Tensor) -> torch.Tensor:
    """Samples (unrounded, unclamped) from JPEG-unit coefficients."""
    return blockwise_idct(coefs) + LEVEL_SHIFT

"""Maths on JPEG DCT coefficients: the one place for transforms of coefficient data.

Conventions (reference.md section 3): the JPEG DCT is the orthonormal 8x8 DCT-II of
the level-shifted block (sample - 128), so DC = 8 * mean; a block's 64 coefficients
are stored in natural row-major order, index ``8 * v + u`` with ``v`` the vertical
frequency; dequantized coefficients are ``q * Q``.
"""

from __future__ import annotations

import functools

import numpy as np

BLOCK = 8
LEVEL_SHIFT = 128.0


@functools.lru_cache(maxsize=None)
def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II matrix ``D`` (float64, read-only): ``F = D @ x``, ``x = D.T @ F``."""
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    d.setflags(write=False)
    return d


def blockwise_dct(plane: np.ndarray) -> np.ndarray:
    """8x8 DCT of a (H, W) plane whose sides are multiples of 8 -> (H/8, W/8, 64)."""
    h, w = plane.shape
    blocks = plane.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    d = dct_matrix()
    coefs = d @ blocks @ d.T  # rows: vertical frequency v, columns: horizontal u
    return coefs.reshape(h // BLOCK, w // BLOCK, BLOCK * BLOCK)


def blockwise_idct(coefs: np.ndarray) -> np.ndarray:
    """Inverse of :func:`blockwise_dct`: (hb, wb, 64) -> (8 hb, 8 wb) plane."""
    hb, wb, _ = coefs.shape
    d = dct_matrix()
    blocks = d.T @ coefs.reshape(hb, wb, BLOCK, BLOCK) @ d
    return blocks.transpose(0, 2, 1, 3).reshape(hb * BLOCK, wb * BLOCK)


def dequantize(coefs: np.ndarray, table: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Quantized (hb, wb, 64) coefficients times their 64-entry table, in JPEG units."""
    return coefs.astype(dtype) * np.asarray(table, dtype=dtype)


def pad_to_blocks(plane: np.ndarray) -> np.ndarray:
    """Edge-replicates a plane up to whole 8x8 blocks, as JPEG encoders do."""
    h, w = plane.shape
    return np.pad(plane, ((0, -h % BLOCK), (0, -w % BLOCK)), mode="edge")


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """JFIF full-range RGB -> YCbCr (ITU-R BT.601 weights), float64 (..., 3)."""
    rgb = rgb.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168735892 * r - 0.331264108 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418687589 * g - 0.081312411 * b + 128.0
    return np.stack([y, cb, cr], axis=-1)


def cmyk_to_rgb(cmyk: np.ndarray, inverted: bool) -> np.ndarray:
    """Naive CMYK -> RGB, ``R = (255 - C)(255 - K) / 255``.

    Adobe applications write inverted CMYK (255 = no ink); libjpeg hands the
    stored values back unchanged, so ``inverted`` says which convention holds.
    """
    ink = cmyk.astype(np.float64)
    if inverted:
        ink = 255.0 - ink
    white = 255.0 - ink
    return white[..., :3] * white[..., 3:4] / 255.0


def coefficients_from_pixels(planes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Integer 4:4:4 DCT coefficients (quantization step 1) of (H, W, C) YCbCr or gray samples."""
    out = []
    for c in range(planes.shape[-1]):
        coefs = blockwise_dct(pad_to_blocks(planes[..., c] - LEVEL_SHIFT))
        out.append(np.round(coefs).astype(np.int16))
    return tuple(out)

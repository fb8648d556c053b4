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


# ---- Exact resampling on coefficients (issue 3: crop, resize and flip without pixels) ----
#
# Per axis, crop + resize + flip is a linear map R on samples, so on coefficients it is
# M = DCT_out . R . IDCT_in (block-diagonal DCTs around R). An output block depends only
# on the input blocks under its filter's support, so M is applied band by band over the
# crop, never as a dense product over the whole image.


def resize_taps(start: float, length: float, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased bilinear taps from the box [start, start + length) to out_size samples.

    The filter of torchvision's ``resize(..., antialias=True)`` (torch's
    ``interpolate(mode="bilinear", antialias=True)``): a triangle widened by the scale
    when shrinking, renormalized over the samples inside the box. For an integer box it
    equals resizing the cropped signal; fractional boxes (the chroma of a luma-aligned
    crop) follow the same formula. Output sample i is
    ``sum_k weights[i, k] * x[firsts[i] + k]``.
    """
    scale = length / out_size
    support = max(scale, 1.0)
    box_first, box_end = int(np.floor(start)), int(np.ceil(start + length))
    centres = start + scale * (np.arange(out_size) + 0.5)
    taps = int(np.ceil(2 * support)) + 1
    firsts = np.clip(np.floor(centres - support - 0.5).astype(np.int64) + 1, box_first, max(box_first, box_end - taps))
    positions = firsts[:, None] + np.arange(taps)[None, :]
    weights = np.clip(1.0 - np.abs(positions + 0.5 - centres[:, None]) / support, 0.0, None)
    weights[positions >= box_end] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return firsts, weights


def resize_matrix(start: float, length: float, out_size: int, in_size: int) -> np.ndarray:
    """The dense (out_size, in_size) matrix of :func:`resize_taps` (for references and tests)."""
    firsts, weights = resize_taps(start, length, out_size)
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.arange(out_size)[:, None], firsts[:, None] + np.arange(weights.shape[1])), weights)
    return matrix


def _banded_operator(start: float, length: float, out_blocks: int, in_blocks: int, flip: bool):
    """(lows, bands): output block o = bands[o] @ the B input blocks from lows[o] on.

    ``bands`` is (out_blocks, 8, B * 8), mapping the coefficients of B consecutive input
    blocks to output block o's 8 frequencies: DCT_out . R . IDCT_in, one block pair at a time.
    """
    firsts, weights = resize_taps(start, length, out_blocks * 8)
    if flip:
        firsts, weights = firsts[::-1], weights[::-1]
    taps = weights.shape[1]
    per_block_first = firsts.reshape(out_blocks, 8)
    lows = per_block_first.min(axis=1) // 8
    highs = (per_block_first.max(axis=1) + taps - 1) // 8 + 1
    band = int((highs - lows).max())
    lows = np.clip(lows, 0, max(in_blocks - band, 0))
    samples = np.zeros((out_blocks, 8, band * 8))
    columns = (per_block_first - lows[:, None] * 8)[..., None] + np.arange(taps)
    valid = columns < band * 8  # taps past the plane carry weight 0
    o, y, k = np.nonzero(valid)
    samples[o, y, columns[o, y, k]] = weights.reshape(out_blocks, 8, taps)[o, y, k]
    d = dct_matrix()
    bands = (samples.reshape(out_blocks, 8, band, 8) @ d.T).reshape(out_blocks, 8, band * 8)
    return lows, d @ bands


def _apply_axis(plane: np.ndarray, lows: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Applies a banded operator along axis 0 of a (blocks * 8, ...) coefficient plane."""
    rows = lows[:, None] * 8 + np.arange(bands.shape[2])[None, :]  # (O, B * 8)
    return np.matmul(bands.astype(plane.dtype), plane[rows]).reshape(-1, *plane.shape[1:])


def resample_blocks(
    coefs: np.ndarray,
    box: tuple[float, float, float, float],
    out_size: tuple[int, int],
    flip: bool = False,
) -> np.ndarray:
    """Exact crop + antialiased bilinear resize (+ horizontal flip) of one component.

    ``coefs``: (hb, wb, 64) dequantized coefficients. ``box``: (top, left, height, width)
    in this component's own samples (fractions allowed). ``out_size``: (height, width),
    multiples of 8. Returns (height / 8, width / 8, 64), equal within float rounding to:
    inverse DCT -> crop -> resize (:func:`resize_taps`) -> flip -> forward DCT.
    """
    top, left, height, width = box
    out_h, out_w = out_size
    if out_h % 8 or out_w % 8:
        raise ValueError(f"output size {out_size} must be whole 8x8 blocks")
    hb, wb, _ = coefs.shape
    row_lows, row_bands = _banded_operator(top, height, out_h // 8, hb, flip=False)
    col_lows, col_bands = _banded_operator(left, width, out_w // 8, wb, flip=flip)
    # Only the blocks under the crop are rearranged into a (rows, columns) plane.
    r0, r1 = row_lows.min(), row_lows.max() + row_bands.shape[2] // 8
    c0, c1 = col_lows.min(), col_lows.max() + col_bands.shape[2] // 8
    crop = coefs[r0:r1, c0:c1].reshape(r1 - r0, c1 - c0, 8, 8)
    plane = crop.transpose(0, 2, 1, 3).reshape((r1 - r0) * 8, (c1 - c0) * 8)
    out = _apply_axis(plane, row_lows - r0, row_bands)
    out = _apply_axis(np.ascontiguousarray(out.T), col_lows - c0, col_bands).T
    return out.reshape(out_h // 8, 8, out_w // 8, 8).transpose(0, 2, 1, 3).reshape(out_h // 8, out_w // 8, 64)

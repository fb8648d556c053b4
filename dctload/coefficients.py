"""Maths on JPEG DCT coefficients: the one place for transforms of coefficient data.

Conventions (reference.md section 3): the JPEG DCT is the orthonormal 8x8 DCT-II of
the level-shifted block (sample - 128), so DC = 8 * mean; a block's 64 coefficients
are stored in natural row-major order, index ``8 * v + u`` with ``v`` the vertical
frequency; dequantized coefficients are ``q * Q``.
"""

from __future__ import annotations

import dataclasses
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


def _constant(array: np.ndarray, like):
    """``array`` as ``like``'s kind: numpy as is, torch on its device in its float dtype."""
    if isinstance(like, np.ndarray):
        return array
    import torch

    return torch.tensor(array, dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)


def _floating(x):
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    return x if x.is_floating_point() else x.float()


def blockwise_dct(planes):
    """8x8 DCT of (..., H, W) planes whose sides are multiples of 8 -> (..., H/8, W/8, 64),
    the reader's block layout (:func:`dctload.pixels.to_coefficients` gives the batch contract's).
    numpy arrays or torch tensors (any device, differentiable); level shifting is the caller's."""
    *lead, h, w = planes.shape
    if h % BLOCK or w % BLOCK:
        raise ValueError(f"planes of {h}x{w} are not whole 8x8 blocks")
    planes = _floating(planes)
    blocks = planes.reshape(*lead, h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(-3, -2)
    d = _constant(dct_matrix(), planes)
    coefs = d @ blocks @ d.T  # rows: vertical frequency v, columns: horizontal u
    return coefs.reshape(*lead, h // BLOCK, w // BLOCK, BLOCK * BLOCK)


def blockwise_idct(coefs):
    """Inverse of :func:`blockwise_dct`: (..., hb, wb, 64) -> (..., 8 hb, 8 wb) planes."""
    *lead, hb, wb, k = coefs.shape
    if k != BLOCK * BLOCK:
        raise ValueError(f"expected 64 coefficients per block, got {k}")
    coefs = _floating(coefs)
    d = _constant(dct_matrix(), coefs)
    blocks = d.T @ coefs.reshape(*lead, hb, wb, BLOCK, BLOCK) @ d
    return blocks.swapaxes(-3, -2).reshape(*lead, hb * BLOCK, wb * BLOCK)


def dequantize(coefs: np.ndarray, table: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Quantized (hb, wb, 64) coefficients times their 64-entry table, in JPEG units."""
    return coefs.astype(dtype) * np.asarray(table, dtype=dtype)


def pad_to_blocks(plane: np.ndarray) -> np.ndarray:
    """Edge-replicates a plane up to whole 8x8 blocks, as JPEG encoders do."""
    h, w = plane.shape
    return np.pad(plane, ((0, -h % BLOCK), (0, -w % BLOCK)), mode="edge")


#: JFIF full-range YCbCr (ITU-R BT.601 weights): ``ycbcr = YCBCR_FROM_RGB @ rgb + YCBCR_OFFSET``.
YCBCR_FROM_RGB = np.array([
    [0.299, 0.587, 0.114],
    [-0.168735892, -0.331264108, 0.5],
    [0.5, -0.418687589, -0.081312411],
])
YCBCR_OFFSET = np.array([0.0, 128.0, 128.0])
RGB_FROM_YCBCR = np.linalg.inv(YCBCR_FROM_RGB)


def rgb_to_ycbcr(rgb, axis: int = -1):
    """JFIF full-range RGB (0..255) -> YCbCr, colour on ``axis`` (numpy: float64; torch:
    its float dtype, any device, differentiable)."""
    rgb = _floating(rgb)
    matrix, offset = _constant(YCBCR_FROM_RGB, rgb), _constant(YCBCR_OFFSET, rgb)
    return (rgb.swapaxes(axis, -1) @ matrix.T + offset).swapaxes(axis, -1)


def ycbcr_to_rgb(ycbcr, axis: int = -1):
    """Inverse of :func:`rgb_to_ycbcr` (no rounding, no clamping)."""
    ycbcr = _floating(ycbcr)
    inverse, offset = _constant(RGB_FROM_YCBCR, ycbcr), _constant(YCBCR_OFFSET, ycbcr)
    return ((ycbcr.swapaxes(axis, -1) - offset) @ inverse.T).swapaxes(axis, -1)


#: The example tables of the JPEG standard (ITU-T T.81, Annex K.1), natural order.
STANDARD_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
])
STANDARD_CHROMA_TABLE = np.full(64, 99)
STANDARD_CHROMA_TABLE.reshape(8, 8)[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]


def standard_tables(quality: int, baseline: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) quantization tables of IJG libjpeg's ``jpeg_set_quality``: the
    standard tables scaled by ``5000 / q`` below quality 50, ``200 - 2 q`` above, each
    step clamped to 1..255 (``baseline``) or 1..32767."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be within 1..100, not {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    top = 255 if baseline else 32767
    return tuple(np.clip((base * scale + 50) // 100, 1, top) for base in (STANDARD_LUMA_TABLE, STANDARD_CHROMA_TABLE))


def requantize_plane(coefs: np.ndarray, table: np.ndarray, new_table: np.ndarray) -> np.ndarray:
    """Quantized coefficients ``q`` (..., 64) with steps ``table`` rounded to ``new_table``:
    ``round(q * Q / Q')``, halves away from zero, in integers, as libjpeg's encoder rounds
    (``jcdctmgr.c``). int16 out."""
    x = coefs.astype(np.int64) * np.asarray(table, np.int64)
    step = np.asarray(new_table, np.int64)
    out = np.sign(x) * ((np.abs(x) + step // 2) // step)
    if np.abs(out).max(initial=0) > 32767:
        raise ValueError("requantized coefficients overflow int16: the new steps are too small")
    return out.astype(np.int16)


def quantize(coefs: np.ndarray, table: np.ndarray, axis: int = -1) -> np.ndarray:
    """Coefficients in JPEG units -> int16 quantized to ``table`` (64 steps along ``axis``),
    rounded halves away from zero as libjpeg's encoder rounds. A value beyond int16 is
    a ValueError (the writer then checks 8-bit JPEG's narrower range)."""
    shape = [1] * coefs.ndim
    shape[axis] = 64
    out = np.abs(coefs, dtype=np.float32)
    out /= np.asarray(table, np.float32).reshape(shape)
    out += 0.5
    np.floor(out, out=out)
    np.copysign(out, coefs, out=out)
    if np.abs(out).max(initial=0) > 32767:
        raise ValueError("quantized coefficients overflow int16: the steps are too small")
    return out.astype(np.int16)


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


# ---- Exact resampling on coefficients: crop, resize and flip without pixels ----
#
# Per axis, crop + resize + flip is a linear map R on samples, so on coefficients it is
# M = DCT_out . R . IDCT_in (block-diagonal DCTs around R). An output block depends only
# on the input blocks under its filter's support, so M is applied band by band over the
# crop, never as a dense product over the whole image. Bands are built once per distinct
# geometry (relative to the block grid) and cached.


@dataclasses.dataclass(frozen=True)
class AxisMap:
    """Where the output samples of one axis come from, in a component's own samples.

    Output sample ``i`` (of ``size``) is centred on source position
    ``start + scale * (i + 0.5)`` and filtered from the source samples in ``[lo, hi)``
    (the cropped region the resize sees; fractions allowed, e.g. chroma of odd luma
    boxes). ``flip`` reverses the output order. The identity over n samples is
    ``AxisMap(0, 1, n, 0, n)``.

    ``valid`` (0: all ``size``): only the first ``valid`` outputs are the image's; the
    rest repeat output ``valid - 1``, the edge replication with which JPEG encoders fill
    a partial block (:mod:`dctload.prepare` writes images of any size). ``support`` (0:
    ``max(scale, 1)``, the antialiased bilinear filter's) is the triangle's half-width in
    source samples: wider blurs more (chroma subsampled as it is resized).
    """

    start: float
    scale: float
    size: int
    lo: float
    hi: float
    flip: bool = False
    valid: int = 0
    support: float = 0.0

    @property
    def filter_support(self) -> float:
        return self.support or max(self.scale, 1.0)

    def sources(self) -> np.ndarray:
        """For each output sample, the index ``i`` whose centre ``start + scale * (i + 0.5)``
        it takes: padding repeats the last valid output; ``flip`` reverses the valid ones."""
        real = self.valid if 0 < self.valid < self.size else self.size
        index = np.minimum(np.arange(self.size), real - 1)
        return real - 1 - index if self.flip else index

    def centres(self) -> np.ndarray:
        return self.start + self.scale * (self.sources() + 0.5)

    @classmethod
    def identity(cls, n: int) -> "AxisMap":
        return cls(0.0, 1.0, n, 0.0, float(n))

    def subsampled(self, factor: float, size: int) -> "AxisMap":
        """The same output field of view for a plane with ``factor`` times fewer source
        samples (chroma), sampled to ``size`` outputs. Sample centres follow JFIF's
        centred chroma siting: chroma sample j covers source position factor * (j + 0.5)."""
        if self.valid or self.support:
            raise ValueError("subsampled() takes an axis without padding or a support of its own")
        scale = self.scale * self.size / size
        return AxisMap(self.start / factor, scale / factor, size, self.lo / factor, self.hi / factor, self.flip)


def resize_taps(axis: AxisMap) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased bilinear taps of ``axis``: output i = sum_k weights[i, k] * x[firsts[i] + k].

    The filter of torchvision's ``resize(..., antialias=True)`` (torch's
    ``interpolate(mode="bilinear", antialias=True)``): a triangle widened by the scale
    when shrinking, renormalized over the source samples in ``[floor(lo), ceil(hi))``;
    outputs in the order of :meth:`AxisMap.sources` (flip and padding included).
    """
    support = axis.filter_support
    box_first, box_end = int(np.floor(axis.lo)), int(np.ceil(axis.hi))
    centres = axis.centres()
    taps = int(np.ceil(2 * support)) + 1
    firsts = np.floor(centres - support - 0.5).astype(np.int64) + 1
    firsts = np.clip(firsts, box_first, max(box_first, box_end - taps))
    positions = firsts[:, None] + np.arange(taps)[None, :]
    weights = np.clip(1.0 - np.abs(positions + 0.5 - centres[:, None]) / support, 0.0, None)
    weights[positions >= box_end] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    return firsts, weights


def resize_matrix(axis: AxisMap, in_size: int) -> np.ndarray:
    """The dense (size, in_size) matrix of ``axis``, flip and padding included (for references and tests)."""
    firsts, weights = resize_taps(axis)
    matrix = np.zeros((axis.size, in_size))
    np.add.at(matrix, (np.arange(axis.size)[:, None], firsts[:, None] + np.arange(weights.shape[1])), weights)
    return matrix


@functools.lru_cache(maxsize=None)
def _block_diagonal_idct(blocks: int) -> np.ndarray:
    """blockdiag(D.T, ..., D.T): the inverse DCT of ``blocks`` consecutive blocks."""
    return np.kron(np.eye(blocks), dct_matrix().T)


@functools.lru_cache(maxsize=4096)
def _banded_operator(axis: AxisMap) -> tuple[np.ndarray, np.ndarray]:
    """(lows, bands) for an axis whose box starts in block 0: output block o is
    ``bands[o] @`` the coefficients of the B input blocks from block ``lows[o]`` on.

    ``bands`` is (out_blocks, 8, B * 8) float32, DCT_out . R . IDCT_in per block pair,
    with the flip and padding folded in (reversed taps: the odd horizontal frequencies
    change sign). The taps are those of :func:`resize_taps`, evaluated densely over each band.
    """
    if axis.size % BLOCK:
        raise ValueError(f"output size {axis.size} is not whole 8x8 blocks")
    out_blocks = axis.size // BLOCK
    support = axis.filter_support
    box_first, box_end = int(np.floor(axis.lo)), int(np.ceil(axis.hi))
    centres = axis.centres().reshape(out_blocks, BLOCK)
    # Blocks under each output block's filter support, clipped to the box.
    first = np.maximum(np.floor(centres.min(axis=1) - support - 0.5) + 1, box_first)
    last = np.minimum(np.ceil(centres.max(axis=1) + support - 0.5), box_end - 1)
    lows = (first // BLOCK).astype(np.int64)
    band = int((last // BLOCK - lows).max()) + 1
    positions = (lows[:, None] * BLOCK + np.arange(band * BLOCK))[:, None, :] + 0.5
    weights = np.maximum(1.0 - np.abs(positions - centres[..., None]) * (1.0 / support), 0.0)
    weights *= (positions > box_first) & (positions < box_end)
    weights /= weights.sum(axis=2, keepdims=True)
    # D . W_o . blockdiag(D.T) for every o, as two 2-D products.
    rows = weights.reshape(out_blocks * BLOCK, band * BLOCK) @ _block_diagonal_idct(band)
    rows = rows.reshape(out_blocks, BLOCK, band * BLOCK).transpose(1, 0, 2).reshape(BLOCK, -1)
    bands = (dct_matrix() @ rows).reshape(BLOCK, out_blocks, band * BLOCK).transpose(1, 0, 2)
    lows.setflags(write=False)
    bands = bands.astype(np.float32)
    bands.setflags(write=False)
    return lows, bands


def _operator(axis: AxisMap) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_banded_operator` for any box: the cached operator of the box moved to block 0."""
    shift = BLOCK * int(np.floor(axis.lo / BLOCK))
    relative = dataclasses.replace(axis, start=axis.start - shift, lo=axis.lo - shift, hi=axis.hi - shift)
    lows, bands = _banded_operator(relative)
    return lows + shift // BLOCK, bands


def axis_tuple(axis: AxisMap) -> tuple:
    """``axis`` as the C extension takes it: (start, scale, lo, hi, size, flip[, valid, support])."""
    row = (float(axis.start), float(axis.scale), float(axis.lo), float(axis.hi), int(axis.size), bool(axis.flip))
    return row + (int(axis.valid), float(axis.support)) if axis.valid or axis.support else row


def resample_into(plane: np.ndarray, table: np.ndarray, rows: AxisMap, cols: AxisMap, out: np.ndarray,
                  quantize: np.ndarray | None = None) -> None:
    """:func:`resample` of one quantized plane, in C (``csrc/resample.c``), written into
    ``out`` (float32 (64, rows.size / 8, cols.size / 8), rows contiguous): the fast path
    of the transforms and loaders, equal to :func:`resample` within float32 rounding.
    With ``quantize`` (64 steps), ``out`` is int16 (rows.size / 8, cols.size / 8, 64)
    instead, the result as :func:`quantize` rounds it (saturated to int16).

    ``plane``: int16 (hb, wb, 64) blocks (rows may be strided, as the reader's views are),
    ``table``: its 64 uint16 steps. A box or size the C path cannot take is a ValueError.
    """
    from . import _reader

    if plane.dtype != np.int16 or plane.ndim != 3 or plane.strides[1:] != (128, 2):
        plane = np.ascontiguousarray(plane, dtype=np.int16)
    steps = None if quantize is None else np.ascontiguousarray(quantize, dtype=np.uint16)
    _reader.resample(plane, np.ascontiguousarray(table, dtype=np.uint16), axis_tuple(rows), axis_tuple(cols), out,
                     steps)


def resample(planes, tables, rows: AxisMap, cols: AxisMap) -> np.ndarray:
    """Exact crop + antialiased bilinear resize + flip of components on one grid, on
    coefficients: the numpy reference of :func:`resample_into` (the C path the loaders use).

    ``planes``: (hb, wb, 64) coefficient arrays of the same block grid (Cb and Cr),
    quantized (int16, with their 64-entry ``tables``) or in JPEG units (``tables=None``).
    Returns float32 (len(planes), 64, rows.size / 8, cols.size / 8), channel ``8 v + u``,
    in JPEG units, equal within float32 rounding to inverse DCT -> crop + resize
    (:func:`resize_taps`) -> flip -> forward DCT.
    """
    row_lows, row_bands = _operator(rows)
    col_lows, col_bands = _operator(cols)
    n, (hb, wb, _) = len(planes), planes[0].shape
    r0, r1 = int(row_lows.min()), int(row_lows.max()) + row_bands.shape[2] // BLOCK
    c0, c1 = int(col_lows.min()), int(col_lows.max()) + col_bands.shape[2] // BLOCK
    # The blocks under the box, dequantized, components side by side: (R, n, C, 64).
    # Blocks past the image edge (a band may reach them, with zero weight) stay zero.
    blocks = (np.zeros if r1 > hb or c1 > wb else np.empty)((r1 - r0, n, c1 - c0, 64), np.float32)
    for j, coefs in enumerate(planes):
        inside = coefs[r0:r1, c0:c1]
        target = blocks[: inside.shape[0], j, : inside.shape[1]]
        if tables is None:
            target[...] = inside
        else:
            np.multiply(inside, np.asarray(tables[j], np.float32), out=target)
    # Rows: output block o = row_bands[o] @ (the band of sample rows under it); sample
    # row 8 * r + v is frequency v of block row r, and the gather transposes as it copies.
    band_rows = (row_lows - r0)[:, None] * BLOCK + np.arange(row_bands.shape[2])
    gathered = blocks.reshape(r1 - r0, -1, BLOCK, BLOCK)[band_rows // BLOCK, :, band_rows % BLOCK, :]
    tall = np.matmul(row_bands, gathered.reshape(*band_rows.shape, -1))
    tall = tall.reshape(rows.size, n, (c1 - c0) * BLOCK)  # sample rows x crop columns
    # Columns: out[j, p, (o, v), u] = tall[(o, v), j, band of block p] @ col_bands[p].T.
    band_columns = (col_lows - c0)[:, None] * BLOCK + np.arange(col_bands.shape[2])
    gathered = tall[:, :, band_columns].transpose(1, 2, 0, 3)
    out = np.matmul(gathered, col_bands.transpose(0, 2, 1))
    out_rows, out_cols = rows.size // BLOCK, cols.size // BLOCK
    out = out.reshape(n, out_cols, out_rows, BLOCK, BLOCK).transpose(0, 3, 4, 2, 1)
    return np.ascontiguousarray(out).reshape(n, BLOCK * BLOCK, out_rows, out_cols)


#: Chroma subsampled as it is resized is filtered with a triangle this many times the luma
#: filter's half-width (in luma samples), not twice it (the antialiased filter at chroma's
#: spacing): sharper chroma that decoders' upsampling blurs back. On imagenet-sample at short
#: side 256, quality 90, 4:2:0 (PSNR against the pixel reference), factors 1.0/1.25/1.5/1.73/
#: 2.0 gave 37.29/37.32/37.29/37.22/37.11 dB for +1.4/+1.0/+0.6/+0.3/0% bytes; Pillow's
#: decode-resize-encode (a 2x2 box after the resize) matches about 1.73.
CHROMA_SUPPORT = 1.25


def scale_axis(size: int, new_size: int, factor: float, new_factor: tuple[int, int]) -> AxisMap:
    """One axis of :func:`scale_components`: a component subsampled by ``factor`` in an
    image of ``size`` luma samples, resized to ``new_size`` luma samples subsampled by
    ``new_factor`` (max, own sampling factor), padded to whole blocks. Chroma sample j sits
    at luma ``factor * (j + 0.5)`` (JFIF's centred siting), in the source and in the output;
    a subsampled output is filtered with :data:`CHROMA_SUPPORT` (at least one source sample)."""
    most, own = new_factor
    valid = -(-new_size * own // most)  # libjpeg's component size: ceil(size * own / max)
    blocks = -(-valid // BLOCK)
    ratio = size / new_size
    # never narrower than linear interpolation between the source's own samples (chroma
    # sampled 4x coarser than luma, 4:1:1, is upsampled here)
    support = max(CHROMA_SUPPORT * max(ratio, 1.0) / factor, 1.0) if most > own else 0.0
    return AxisMap(0.0, ratio * most / own / factor, BLOCK * blocks, 0.0, size / factor, valid=valid,
                   support=support)


def scale_components(planes, tables, sampling, size: tuple[int, int], new_size: tuple[int, int],
                     new_sampling, new_tables=None) -> list[np.ndarray]:
    """Every component of an image resized at once on coefficients, exactly: luma (and
    chroma kept at luma's resolution) with the transforms' antialiased bilinear filter over
    the whole image (torchvision's ``resize`` of the decoded planes), subsampled chroma with
    :func:`scale_axis`'s narrower triangle, to a new size and chroma subsampling, each plane padded to whole blocks by edge
    replication (as an encoder pads): what ``dctload prepare`` writes.

    ``planes``: the quantized (hb, wb, 64) int16 components, ``tables`` their steps,
    ``sampling`` their (h, v) factors; ``size``/``new_size``: (height, width) in luma pixels.
    Returns float32 (hb', wb', 64) planes in JPEG units, sized as libjpeg sizes the
    components of ``new_size`` at ``new_sampling``; with ``new_tables`` (one per component),
    C-contiguous int16 planes quantized to them (:func:`quantize`, in C).
    """
    h_max, v_max = (max(f[i] for f in sampling) for i in (0, 1))
    new_h_max, new_v_max = (max(f[i] for f in new_sampling) for i in (0, 1))
    out = []
    for c, (plane, table, (h, v), (new_h, new_v)) in enumerate(zip(planes, tables, sampling, new_sampling)):
        rows = scale_axis(size[0], new_size[0], v_max / v, (new_v_max, new_v))
        cols = scale_axis(size[1], new_size[1], h_max / h, (new_h_max, new_h))
        if new_tables is None:
            result = np.empty((64, rows.size // BLOCK, cols.size // BLOCK), np.float32)
            resample_into(plane, table, rows, cols, result)
            out.append(result.transpose(1, 2, 0))
        else:
            result = np.empty((rows.size // BLOCK, cols.size // BLOCK, 64), np.int16)
            resample_into(plane, table, rows, cols, result, quantize=new_tables[c])
            out.append(result)
    return out

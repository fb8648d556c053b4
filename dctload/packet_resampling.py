"""Exact GPU resampling of packets (:mod:`dctload.packets`): the crop + resize + flip of
:mod:`dctload.transforms` for a whole batch, as two dense matrix products per plane, in
torch on any device. On a GPU a dense product over the box is cheaper than the CPU
path's banded one (``csrc/resample.c``); float64 keeps it exact whatever the matmul
precision setting.
"""

from __future__ import annotations

import functools

import torch

from . import coefficients
from .coefficients import BLOCK
from .packets import GEOMETRY_FIELDS, PackedBatch, to_device, unpack_blocks


@functools.lru_cache(maxsize=None)
def _dct_matrix(device: torch.device) -> torch.Tensor:
    # kept per device: a copy from pageable memory would wait on the device at every batch
    return torch.tensor(coefficients.dct_matrix(), dtype=torch.float64, device=device)


def axis_operators(geometry: torch.Tensor, length: int, size: int) -> torch.Tensor:
    """Dense DCT_out . R . IDCT_in operators of a batch of plane axes.

    ``geometry``: (N, 6) rows of :class:`~dctload.coefficients.AxisMap` fields (relative to
    the shipped blocks); ``length``: coefficient rows (8 x blocks) of the padded planes;
    ``size``: output samples. Returns float64 (N, size, length); the taps are those of
    :func:`dctload.coefficients.resize_taps` (antialiased bilinear over the box), flip
    folded in.
    """
    start, scale, _, lo, hi, flip = (geometry[:, k, None] for k in range(GEOMETRY_FIELDS))
    device = geometry.device
    outputs = torch.arange(size, device=device, dtype=torch.float64)
    centres = start + scale * (outputs + 0.5)
    centres = torch.where(flip > 0.5, centres.flip(-1), centres)
    support = scale.clamp(min=1.0)
    positions = torch.arange(length, device=device, dtype=torch.float64)
    inside = (positions >= lo.floor()[..., None]) & (positions < hi.ceil()[..., None])
    weights = (1.0 - (positions + 0.5 - centres[..., None]).abs() / support[..., None]).clamp(min=0.0) * inside
    weights = weights / weights.sum(-1, keepdim=True)
    d = _dct_matrix(device)
    n = geometry.shape[0]
    # blockdiag(D) . W . blockdiag(D^T), one 8x8 product per block on each side.
    weights = weights.reshape(n, size // BLOCK, BLOCK, length // BLOCK, BLOCK)
    operator = torch.einsum("vi,noibx,ux->novbu", d, weights, d)
    return operator.reshape(n, size, length)


def _interleave(planes: torch.Tensor) -> torch.Tensor:
    """(N, hb, wb, 64) -> (N, 8 hb, 8 wb): row 8 r + v, column 8 c + u."""
    n, hb, wb, _ = planes.shape
    return planes.reshape(n, hb, wb, BLOCK, BLOCK).permute(0, 1, 3, 2, 4).reshape(n, hb * BLOCK, wb * BLOCK)


def _resample_planes(planes: torch.Tensor, tables: torch.Tensor, geometry: torch.Tensor,
                     out_rows: int, out_cols: int) -> torch.Tensor:
    # float64: exact whatever the matmul precision setting (TF32 would break the bound),
    # and as fast as float32 on GPUs with FP64 tensor cores.
    x = _interleave(planes.double() * tables[:, None, None, :].double())
    rows = axis_operators(geometry[:, 0], x.shape[1], out_rows)
    cols = axis_operators(geometry[:, 1], x.shape[2], out_cols)
    z = rows @ x @ cols.transpose(1, 2)  # (N, out_rows, out_cols), interleaved
    n = z.shape[0]
    z = z.reshape(n, out_rows // BLOCK, BLOCK, out_cols // BLOCK, BLOCK).permute(0, 2, 4, 1, 3)
    return z.reshape(n, BLOCK * BLOCK, out_rows // BLOCK, out_cols // BLOCK).float()


def _output_size(geometry: torch.Tensor) -> tuple[int, int]:
    sizes = geometry[:, 0, :, 2]
    height, width = int(sizes[0, 0]), int(sizes[0, 1])
    if not (torch.all(sizes[:, 0] == height) and torch.all(sizes[:, 1] == width)):
        raise ValueError("samples of different output sizes cannot be batched; crop to one size")
    return height, width


def _resample_group(y, chroma, tables, geometry, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    b = y.shape[0]
    luma = _resample_planes(y, tables[:, 0], geometry[:, 0], height, width)
    chroma = _resample_planes(chroma, torch.cat([tables[:, 1], tables[:, 2]]),
                              torch.cat([geometry[:, 1], geometry[:, 2]]), height // 2, width // 2)
    cbcr = chroma.reshape(2, b, 64, height // 16, width // 16).transpose(0, 1).reshape(b, 128, height // 16, width // 16)
    return luma, cbcr


def resample_packets(packets, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A :class:`PackedBatch` (or one dense ``(Y, Cb, Cr, tables, geometry)`` group, as
    DALI's hybrid pipeline pads it) -> ``(y, cbcr)`` on ``device`` (default: where the
    packets are), in the batch's order. Equal within float32 rounding to
    :func:`dctload.transforms.ToTensor` of the same views.

    A packed batch still on the CPU is read there for its layout and output size, so
    that nothing waits on the device before the products are queued."""
    if isinstance(packets, PackedBatch):
        height, width = _output_size(packets.geometry)
        tables, geometry = to_device(packets[2:4], device)
        outputs, first = [], 0
        for y, chroma in unpack_blocks(packets, device):
            n = y.shape[0]
            outputs.append(_resample_group(y, chroma, tables[first:first + n], geometry[first:first + n], height, width))
            first += n
        return torch.cat([y for y, _ in outputs]), torch.cat([c for _, c in outputs])
    y, cb, cr, tables, geometry = to_device(packets, device)
    height, width = _output_size(geometry)
    return _resample_group(y, torch.cat([cb, cr]), tables, geometry, height, width)

"""The packet format of the exact GPU path: the quantized blocks under each crop box.

Worker processes only entropy-decode (dctload's C reader) and draw the recipe;
:class:`ToPacket` keeps the quantized blocks under the crop box of each component with
its quantization table and the geometry of each plane axis, and :func:`collate_packets`
ships a batch of them sparse (:class:`PackedBatch`): a bit mask of each block's nonzero
coefficients and the nonzero values, a few times smaller than the dense blocks.
:func:`unpack_blocks` rebuilds the padded dense blocks on the device, where
:mod:`dctload.packet_resampling` computes the exact crop + resize + flip.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from . import transforms
from .coefficients import BLOCK, AxisMap
from .transforms.functional import DCTView, chroma_grids

#: Geometry of one plane axis as shipped in a packet: start, scale, size, lo, hi, flip.
GEOMETRY_FIELDS = 6
#: Samples padded together (sorted by luma area): padding a batch of 256 to its largest
#: image cost 6x the transfer and the products.
GROUP = 16


def _axis_row(axis: AxisMap, shift: int) -> list[float]:
    return [axis.start - shift, axis.scale, axis.size, axis.lo - shift, axis.hi - shift, float(axis.flip)]


def _blocks_under(axis: AxisMap) -> tuple[int, int]:
    return int(np.floor(axis.lo)) // BLOCK, -(-int(np.ceil(axis.hi)) // BLOCK)


def plane_layout(view: DCTView) -> list[tuple[tuple[int, int, int, int], list[list[float]]]]:
    """Per component of the view's image (one for grayscale): the blocks under the box,
    ``(r0, r1, c0, c1)``, and the geometry of its rows and columns relative to them.
    The component count comes from the sampling factors, so a header's view will do."""
    height, width = view.size
    if height % 16 or width % 16:
        raise ValueError(f"output size {height}x{width} is not a multiple of 16 (whole 4:2:0 MCUs); add a crop")
    grids = [(view.rows, view.cols)] + (chroma_grids(view) if len(view.image.sampling) > 1 else [])
    layout = []
    for rows, cols in grids:
        (r0, r1), (c0, c1) = _blocks_under(rows), _blocks_under(cols)
        layout.append(((r0, r1, c0, c1), [_axis_row(rows, BLOCK * r0), _axis_row(cols, BLOCK * c0)]))
    return layout


def neutral_chroma(height: int, width: int) -> list[list[float]]:
    """A grayscale image's chroma geometry: one zero block over a valid box."""
    return [[0.0, BLOCK / (height // 2), height // 2, 0.0, BLOCK, 0.0],
            [0.0, BLOCK / (width // 2), width // 2, 0.0, BLOCK, 0.0]]


class ToPacket(transforms.Transform):
    """Ends a DCT transform pipeline (in place of ``ToTensor``) for GPU resampling: the
    quantized blocks under the crop box of each component, the quantization tables and
    the geometry of each plane axis, as tensors (see :func:`collate_packets`). A
    DataLoader over :class:`dctload.DCTFiles` makes whole batches of them in one C call
    instead (:func:`dctload.fused.read_packed`)."""

    def __call__(self, image) -> tuple[torch.Tensor, ...]:
        view = DCTView.of(image)
        img = view.image
        planes, geometry = [], []
        for plane, ((r0, r1, c0, c1), rows_cols) in zip(img.components, plane_layout(view)):
            planes.append(torch.from_numpy(np.ascontiguousarray(plane[r0:r1, c0:c1])))
            geometry.append(rows_cols)
        tables = torch.from_numpy(np.asarray(img.qt[: len(planes)], np.float32).reshape(len(planes), 64))
        if len(planes) == 1:  # grayscale: neutral chroma, zero blocks over a valid box
            zero = torch.zeros((1, 1, 64), dtype=torch.int16)
            planes += [zero, zero]
            geometry += [neutral_chroma(*view.size)] * 2
            tables = torch.cat([tables, torch.ones(2, 64)])
        return planes[0], planes[1], planes[2], tables, torch.tensor(geometry, dtype=torch.float64)


class PackedBatch(NamedTuple):
    """A batch of :class:`ToPacket` outputs as :func:`collate_packets` ships it to the GPU.

    Samples are sorted by luma area and padded, in groups, to the group's largest planes;
    the padded blocks are shipped sparse: a 64-bit mask of each block's nonzero
    coefficients and the nonzero values in block order (quantized blocks are mostly zero,
    so this is a few times smaller than the dense blocks, see README "GPU paths").
    Padded blocks run group by group: the group's luma ``(n, Hy, Wy)``, then its chroma
    ``(2n, Hc, Wc)`` (all Cb, then all Cr).
    """

    masks: torch.Tensor  # uint8 (padded blocks, 8): bit k of byte k // 8 set where coefficient k is nonzero
    values: torch.Tensor  # int16 (nonzeros,)
    tables: torch.Tensor  # float32 (B, 3, 64)
    geometry: torch.Tensor  # float64 (B, 3, 2, 6): per plane, rows and columns (GEOMETRY_FIELDS)
    layout: torch.Tensor  # int64 (groups, 5): samples, Hy, Wy, Hc, Wc (blocks)


def _pack_planes(planes: Sequence[np.ndarray], rows: int, cols: int, masks: list, values: list) -> None:
    """Appends the sparse form of ``planes`` padded to ``(rows, cols)`` blocks."""
    padded = np.zeros((len(planes), rows, cols, 8), np.uint8)
    for i, plane in enumerate(planes):
        nonzero = plane != 0
        padded[i, : plane.shape[0], : plane.shape[1]] = np.packbits(nonzero, axis=-1, bitorder="little")
        values.append(plane[nonzero])
    masks.append(padded.reshape(-1, 8))


def collate_packets(samples: Sequence, group: int = GROUP):
    """Batches :class:`ToPacket` outputs (or ``(packet, target)`` pairs) into a
    :class:`PackedBatch`.

    Samples are sorted by luma area and padded in groups of ``group`` (padding to the
    batch's largest would multiply many times the products on the GPU). Returns the
    batch, or ``(batch, targets)`` with the targets in the same, sorted, order.
    """
    if isinstance(samples, FilledPackets):
        return samples.packed, torch.utils.data.default_collate(list(samples.targets))
    if not samples:
        raise ValueError("cannot collate an empty batch")
    has_targets = len(samples[0]) == 2
    order = sorted(range(len(samples)), key=lambda i: _area(samples[i][0] if has_targets else samples[i]))
    samples = [samples[i] for i in order]
    packets = [s[0] for s in samples] if has_targets else list(samples)
    masks, values, layout = [], [], []
    for first in range(0, len(packets), group):
        chunk = packets[first:first + group]
        luma = [p[0].numpy() for p in chunk]
        chroma = [p[1].numpy() for p in chunk] + [p[2].numpy() for p in chunk]
        shape = [max(p.shape[k] for p in planes) for planes in (luma, chroma) for k in (0, 1)]
        _pack_planes(luma, shape[0], shape[1], masks, values)
        _pack_planes(chroma, shape[2], shape[3], masks, values)
        layout.append([len(chunk), *shape])
    packed = PackedBatch(
        masks=torch.from_numpy(np.concatenate(masks)),
        values=torch.from_numpy(np.concatenate(values)),
        tables=torch.stack([p[3] for p in packets]),
        geometry=torch.stack([p[4] for p in packets]),
        layout=torch.tensor(layout, dtype=torch.int64),
    )
    if not has_targets:
        return packed
    return packed, torch.utils.data.default_collate([s[1] for s in samples])


class FilledPackets(list):
    """A batch already packed (:func:`dctload.fused.read_packed`): ``(packed, targets)``
    in the packed (sorted) order, which :func:`collate_packets` returns as it is."""

    def __init__(self, packed: PackedBatch, targets):
        super().__init__(zip(range(len(targets)), targets))
        self.packed, self.targets = packed, list(targets)


def _area(packet) -> int:
    return packet[0].shape[0] * packet[0].shape[1]


def to_device(tensors, device) -> list[torch.Tensor]:
    """``tensors`` on ``device`` (queued copies from pinned memory), or as they are for None."""
    return [t.to(device, non_blocking=True) if device is not None else t for t in tensors]


def unpack_blocks(packed: PackedBatch, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The dense padded blocks of a :class:`PackedBatch`, on ``device``: per group, luma
    ``(n, Hy, Wy, 64)`` and chroma ``(2n, Hc, Wc, 64)``, int16."""
    layout = packed.layout.tolist()  # on the CPU as collated: no device sync
    masks, values = to_device(packed[:2], device)
    bits = torch.arange(8, dtype=torch.uint8, device=masks.device)
    nonzero = ((masks[:, :, None] >> bits) & 1).reshape(-1, 64).bool()
    blocks = torch.zeros(nonzero.shape, dtype=torch.int16, device=masks.device).masked_scatter_(nonzero, values)
    groups, first = [], 0
    for n, hy, wy, hc, wc in layout:
        luma, chroma = n * hy * wy, 2 * n * hc * wc
        groups.append((blocks[first:first + luma].reshape(n, hy, wy, 64),
                       blocks[first + luma:first + luma + chroma].reshape(2 * n, hc, wc, 64)))
        first += luma + chroma
    return groups

"""Read, crop, resize and flip a whole batch in one C call, decoding only what the boxes need.

A recipe of :mod:`dctload.transforms` (crops, resizes and flips, then ``ToTensor``, then
batch-safe tensor steps such as ``Normalize`` and ``SelectChannels``) runs here without
per-image coefficient arrays. Python makes the recipe's random draws from each file's
header, in the same order and with the same calls as the per-image path (so seeded and
resumed runs give the same tensors). ``_reader.read_resampled`` then entropy-decodes each
sequential file only down to the last MCU row its box's filter needs, and resamples each
component exactly (``csrc/resample.c``) into the batch tensors, on N threads with the GIL
released. :class:`dctload.DCTImageFolder` uses it for whole batches (``__getitems__``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Callable, Sequence

import numpy as np
import torch
from torchvision.transforms import Compose

from . import _reader, reader
from .coefficients import axis_tuple
from . import transforms as T
from .errors import JPEGError, without_frames
from .packets import GROUP, PackedBatch, ToPacket, neutral_chroma, plane_layout
from .transforms import functional as F

BATCH_STEPS = (T.Normalize, T.SelectChannels)


@dataclasses.dataclass(frozen=True)
class Plan:
    """A recipe split for batches: ``geometry`` (per image, on headers), then ``ToTensor``
    (the C call), then ``tail`` (on the batch tensors); or, ``packets``, the geometry then
    ``ToPacket``: the GPU path's packets (:func:`read_packed`)."""

    geometry: tuple
    tail: tuple
    packets: bool = False

    def draw(self, image):
        """The geometry steps on ``image`` (their random draws made now)."""
        view = image
        for step in self.geometry:
            view = step(view)
        return view

    def apply_tail(self, y: torch.Tensor, cbcr: torch.Tensor):
        """The tail on a batch the plan owns: Normalize in place (the batch stays in the
        memory it was filled in, shared memory in DataLoader workers)."""
        sample = (y, cbcr)
        for step in self.tail:
            if isinstance(step, T.Normalize):
                sample = step.normalize_(*sample)
            else:
                sample = step(sample)
        return sample


def plan(transform: Callable | None) -> Plan | None:
    """The batch plan of ``transform``, or None when it is not a recipe of geometry steps,
    ``ToTensor`` and batch-safe steps (then the per-image path runs it)."""
    steps = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    kinds = [type(step) for step in steps]
    if kinds and kinds[-1] is ToPacket and all(isinstance(step, T.Geometry) for step in steps[:-1]):
        return Plan(tuple(steps[:-1]), (), packets=True)
    if T.ToTensor not in kinds:
        return None
    split = kinds.index(T.ToTensor)
    geometry, tail = steps[:split], steps[split + 1:]
    if not all(isinstance(step, T.Geometry) for step in geometry) or \
            not all(isinstance(step, BATCH_STEPS) for step in tail):
        return None
    return Plan(tuple(geometry), tuple(tail))


def header_image(header: dict, source: str | None = None) -> reader.DCTImage:
    """A coefficient-less DCTImage of a header: what the geometry steps need to draw."""
    return reader.DCTImage(None, None, None, qt=None, width=header["width"], height=header["height"],
                           sampling=header["sampling"], colorspace=header["colorspace"],
                           progressive=header["progressive"], source=source)


def geometry_row(view: F.DCTView) -> np.ndarray:
    """(3, 2, 6) float64: (start, scale, lo, hi, size, flip) of the rows and columns of
    Y, Cb and Cr, each in its own plane's samples (chroma as :func:`F.chroma_grids`)."""
    row = np.zeros((3, 2, 6))
    row[0] = axis_tuple(view.rows), axis_tuple(view.cols)
    grids = F.chroma_grids(view) if len(view.image.sampling) == 3 else []
    for c in (1, 2):
        if grids:
            row[c] = axis_tuple(grids[c - 1][0]), axis_tuple(grids[c - 1][1])
        else:  # grayscale: no chroma is read; the sizes only have to fit the batch
            row[c, :, 3] = row[c, :, 1] = 1.0
            row[c, :, 4] = view.rows.size // 2, view.cols.size // 2
    return row


@contextlib.contextmanager
def seeded(seeds: Sequence[int] | None):
    """Per-image seeding (epoch-seeded loaders): yields ``seed(i)``, which seeds torch's
    RNG with ``seeds[i]`` (nothing when ``seeds`` is None); the caller's RNG state is
    restored afterwards."""
    if seeds is None:
        yield lambda i: None
        return
    with torch.random.fork_rng(devices=[]):
        # The CPU generator alone, which every draw uses: torch.manual_seed also queues
        # seeds for CUDA with a stack trace each (250 us here, 10% of an image) and would
        # reseed a GPU's generator that fork_rng(devices=[]) does not restore.
        yield lambda i: torch.default_generator.manual_seed(int(seeds[i]))


@dataclasses.dataclass
class Outcome:
    """What reading one image of a batch gave: ``error`` (a JPEGError or OSError, with no
    traceback, or None), libjpeg's ``warnings``, and the iMCU rows decoded of the total."""

    error: BaseException | None
    warnings: tuple[str, ...]
    rows_decoded: int = 0
    rows_total: int = 0


def draw(datas: Sequence, names: Sequence[str | None], plan: Plan,
         seeds: Sequence[int] | None = None) -> tuple[list, list]:
    """Each image's view (its recipe's draws, made on its header) or its header's error."""
    views, errors = [], []
    with seeded(seeds) as seed:
        for i, (data, name) in enumerate(zip(datas, names)):
            if isinstance(data, BaseException):
                views.append(None)
                errors.append(data)
                continue
            try:
                header = _reader.read_header(data, name)
            except JPEGError as exc:
                views.append(None)
                errors.append(without_frames(exc))
                continue
            seed(i)
            views.append(F.DCTView.of(plan.draw(header_image(header, name))))
            errors.append(None)
    return views, errors


def read_resampled(datas: Sequence, views: Sequence, *, num_threads: int | None = None, strict: bool = False,
                   max_pixels: int | None = reader.DEFAULT_MAX_PIXELS, names: Sequence[str | None] | None = None,
                   shared: bool = False, out: tuple[torch.Tensor, torch.Tensor] | None = None,
                   decode_only: bool = False, crop_aware: bool = True,
                   ) -> tuple[torch.Tensor, torch.Tensor, list[Outcome]]:
    """Reads and resamples ``datas`` (bytes-likes) through ``views`` (one per input, drawn
    by :func:`draw`; None for an input already failed) into new batch tensors ``(y, cbcr)``.

    Inputs that fail keep unspecified slots and report their error in the outcomes (a
    layout the resampling cannot take is an UnsupportedJPEGError with code ``geometry``);
    libjpeg's ``colorspace`` refusal (RGB, CMYK, YCCK files) is the caller's to route
    through pixels. ``shared``: allocate the tensors in shared memory (DataLoader workers).
    ``out``: write into the caller's ``(y, cbcr)`` instead (float32, C-contiguous, the
    batch's shapes; pinned memory, say, for a copy to the GPU without staging).
    ``decode_only``: stop after the entropy decoding (the floor, for benchmarks);
    ``crop_aware=False``: decode every row (to measure what stopping early saves).
    """
    names = list(names) if names is not None else [None] * len(datas)
    first = next((v for v in views if v is not None), None)
    height, width = first.size if first is not None else (16, 16)
    if height % 16 or width % 16:
        raise ValueError(f"output size {height}x{width} is not a multiple of 16 (whole 4:2:0 MCUs); add a crop")
    for view in views:
        if view is not None and view.size != (height, width):
            raise ValueError(f"samples of different sizes cannot be batched: {view.size} and {(height, width)}")
    shapes = (len(datas), 64, height // 8, width // 8), (len(datas), 128, height // 16, width // 16)
    if out is None:
        y, cbcr = (_empty(shape, shared) for shape in shapes)
    else:
        y, cbcr = out
        for tensor, shape in zip(out, shapes):
            if tensor.dtype != torch.float32 or tuple(tensor.shape) != shape or not tensor.is_contiguous() \
                    or tensor.device.type != "cpu":
                raise ValueError(f"out must be C-contiguous float32 CPU tensors of shapes {shapes}")
    live = [i for i, v in enumerate(views) if v is not None]
    outcomes = [Outcome(None, ()) for _ in datas]
    if live:
        geometry = np.stack([geometry_row(views[i]) for i in live])
        limit = 0 if max_pixels is None else int(max_pixels)
        threads = num_threads or reader.default_num_threads()
        index = torch.tensor(live)
        # One C call over the live inputs, straight into the batch when all are live.
        whole = len(live) == len(datas)
        out_y, out_cbcr = (y, cbcr) if whole else (y.new_empty((len(live), *y.shape[1:])),
                                                    cbcr.new_empty((len(live), *cbcr.shape[1:])))
        errors, warnings, rows = _reader.read_resampled(
            [datas[i] for i in live], geometry, out_y.numpy(), out_cbcr.numpy(), threads, strict, limit, decode_only,
            crop_aware, [names[i] for i in live])
        if not whole:
            y[index], cbcr[index] = out_y, out_cbcr
        for i, error, warning, (decoded, total) in zip(live, errors, warnings, rows):
            outcomes[i] = Outcome(error, tuple(warning), decoded, total)
    return y, cbcr, outcomes


def read_packed(datas: Sequence, views: Sequence, *, num_threads: int | None = None, strict: bool = False,
                max_pixels: int | None = reader.DEFAULT_MAX_PIXELS, names: Sequence[str | None] | None = None,
                shared: bool = False, crop_aware: bool = True) -> tuple[PackedBatch | None, list[int], list[Outcome]]:
    """The GPU path's packets of a batch in one C call: ``(packed, order, outcomes)``.

    ``views``: one per input, drawn by :func:`draw`. The inputs are sorted by luma area
    and padded in groups as :func:`dctload.packets.collate_packets` does (``order``: the
    inputs in the packed order), and ``_reader.read_packed`` entropy-decodes each only
    down to the blocks it ships and writes their masks, nonzero values and tables straight
    into the batch, on ``num_threads`` threads. The result equals ``collate_packets`` of
    ``ToPacket`` on the same views. ``packed`` is None when an input has no view or fails
    (the outcomes say why): the caller then takes the per-image route for the batch.
    ``shared``: the batch's tensors in shared memory (DataLoader workers).
    """
    n = len(datas)
    names = list(names) if names is not None else [None] * n
    outcomes = [Outcome(None, ()) for _ in datas]
    if any(view is None or len(view.image.sampling) not in (1, 3) for view in views):  # CMYK, YCCK: per image
        return None, list(range(n)), outcomes
    layouts = [plane_layout(view) for view in views]
    order = sorted(range(n), key=lambda i: _blocks(layouts[i][0][0]))  # stable: collate_packets' order
    ranges = np.zeros((n, 3, 4), np.int32)
    mask_at, mask_row, value_at = (np.zeros((n, 3), np.int64) for _ in range(3))
    geometry = np.zeros((n, 3, 2, 6), np.float64)
    tables = np.ones((n, 3, 64), np.float32)
    layout, blocks, values = [], 0, 0
    for first in range(0, n, GROUP):
        group = order[first:first + GROUP]
        planes = [[layouts[i][c][0] if c < len(layouts[i]) else (0, 1, 0, 1) for c in range(3)] for i in group]
        hy, wy = (max(p[0][1] - p[0][0] for p in planes), max(p[0][3] - p[0][2] for p in planes))
        hc, wc = (max(p[c][1] - p[c][0] for p in planes for c in (1, 2)),
                  max(p[c][3] - p[c][2] for p in planes for c in (1, 2)))
        layout.append([len(group), hy, wy, hc, wc])
        # blocks and values run: the group's luma, then all its Cb, then all its Cr
        for c, (h, w) in ((0, (hy, wy)), (1, (hc, wc)), (2, (hc, wc))):
            for k, i in enumerate(group):
                slot = first + k
                r0, r1, c0, c1 = planes[k][c]
                ranges[slot, c] = planes[k][c]
                mask_at[slot, c], mask_row[slot, c], value_at[slot, c] = blocks, w, values
                blocks += h * w
                values += (r1 - r0) * (c1 - c0) * 64
        for k, i in enumerate(group):
            rows_cols = [g for _, g in layouts[i]]
            if len(rows_cols) == 1:
                rows_cols += [neutral_chroma(*views[i].size)] * 2
            geometry[first + k] = rows_cols
    # the batch's tensors, in shared memory in DataLoader workers: written there, not copied
    masks, packed_tables, packed_geometry = (_empty(shape, shared, dtype) for shape, dtype in (
        ((blocks, 8), torch.uint8), ((n, 3, 64), torch.float32), ((n, 3, 2, 6), torch.float64)))
    masks.zero_()
    packed_tables.numpy()[:] = tables
    packed_geometry.numpy()[:] = geometry
    scratch = np.empty(values, np.int16)
    limit = 0 if max_pixels is None else int(max_pixels)
    errors, warnings, rows, counts = _reader.read_packed(
        [datas[i] for i in order], ranges, mask_at, mask_row, value_at, masks.numpy(), scratch, packed_tables.numpy(),
        num_threads or reader.default_num_threads(), strict, limit, crop_aware, [names[i] for i in order])
    for slot, i in enumerate(order):
        outcomes[i] = Outcome(errors[slot], tuple(warnings[slot]), *rows[slot])
    if any(o.error is not None for o in outcomes):
        return None, order, outcomes
    # The nonzero values, compacted in the order the GPU unpacks them (value_at's order).
    segments = sorted((value_at[slot, c], counts[slot][c]) for slot in range(n) for c in range(3) if counts[slot][c])
    packed_values = _empty((sum(count for _, count in segments),), shared, torch.int16)
    position = 0
    target = packed_values.numpy()
    for at, count in segments:
        target[position:position + count] = scratch[at:at + count]
        position += count
    packed = PackedBatch(masks=masks, values=packed_values, tables=packed_tables, geometry=packed_geometry,
                         layout=torch.tensor(layout, dtype=torch.int64))
    return packed, order, outcomes


def _blocks(box: tuple[int, int, int, int]) -> int:
    r0, r1, c0, c1 = box
    return (r1 - r0) * (c1 - c0)


def _empty(shape: tuple, shared: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    if not shared:
        return torch.empty(shape, dtype=dtype)
    # Storage in shared memory, as default_collate allocates in DataLoader workers: the
    # batch then reaches the main process without a copy.
    numel = int(np.prod(shape))
    storage = torch.empty(0, dtype=dtype)._typed_storage()._new_shared(numel, device="cpu")
    return torch.empty(0, dtype=dtype).new(storage).view(shape)


def read_file(path: str | os.PathLike):
    """The bytes of a file, or the OSError (without traceback) that reading it raised."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return without_frames(exc)


def in_worker_process() -> bool:
    return torch.utils.data.get_worker_info() is not None

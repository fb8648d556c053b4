"""GPU paths to the batch contract (:mod:`dctload.batch`), in torch.

Two ways to get ``(y, cbcr)`` onto a GPU:

- **Pixels decoded on the GPU** (``backend="nvjpeg"``: ``torchvision.io.decode_jpeg``
  with ``device="cuda"``, batched nvJPEG; DALI's decoders in :mod:`dctload.dali`), then
  :func:`pixels_to_batch`: YCbCr, chroma to 4:2:0 and the blockwise DCT on the GPU.
- **Coefficients resampled on the GPU** (``backend="coefficients"``, the hybrid path):
  worker processes only entropy-decode (dctload's C reader) and draw the augmentation;
  :class:`ToPacket` keeps the quantized blocks under the crop box with the geometry,
  :func:`collate_packets` ships a batch of them sparse (:class:`PackedBatch`), and
  :func:`resample_packets` applies the exact crop + resize + flip of
  :mod:`dctload.transforms` to a whole batch as two dense matrix products per plane. On
  a GPU a dense product over the box is cheaper than the CPU path's banded one.

:class:`GPULoader` wraps either behind the DataLoader's interface.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.v2.functional as v2
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from . import batch, coefficients, pixels, transforms
from .coefficients import BLOCK, AxisMap
from .errors import JPEGError
from .folder import DCTImageFolder
from .reader import read_header
from .transforms.functional import DCTView, chroma_grids

#: Every GPU path: GPULoader's two, then dctload.dali.DALILoader's two.
BACKENDS = ("coefficients", "nvjpeg", "dali", "dali-hybrid")


# --- pixels -> batch contract --------------------------------------------------------


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
        images = pixels.rgb_to_ycbcr(images)
    elif color != "ycbcr":
        raise ValueError(f'color must be "rgb" or "ycbcr", not {color!r}')
    y = pixels.to_coefficients(images[:, 0])
    chroma = F.interpolate(images[:, 1:], size=(h // 2, w // 2), mode="bilinear", antialias=True, align_corners=False)
    cbcr = pixels.to_coefficients(chroma).reshape(b, 2 * 64, h // 16, w // 16)
    return y, cbcr


# --- coefficients resampled on the GPU (hybrid) -------------------------------------

# Geometry of one plane axis as shipped in a packet: start, scale, size, lo, hi, flip.
_GEOMETRY_FIELDS = 6


def _axis_row(axis: AxisMap, shift: int) -> list[float]:
    return [axis.start - shift, axis.scale, axis.size, axis.lo - shift, axis.hi - shift, float(axis.flip)]


def _blocks_under(axis: AxisMap) -> tuple[int, int]:
    return int(np.floor(axis.lo)) // BLOCK, -(-int(np.ceil(axis.hi)) // BLOCK)


class ToPacket(transforms.Transform):
    """Ends a DCT transform pipeline (in place of ``ToTensor``) for GPU resampling: the
    quantized blocks under the crop box of each component, the quantization tables and
    the geometry of each plane axis, as tensors (see :func:`collate_packets`)."""

    def __call__(self, image) -> tuple[torch.Tensor, ...]:
        view = DCTView.of(image)
        height, width = view.size
        if height % 16 or width % 16:
            raise ValueError(f"output size {height}x{width} is not a multiple of 16 (whole 4:2:0 MCUs); add a crop")
        img = view.image
        grids = [(view.rows, view.cols)] + (chroma_grids(view) if img.cb is not None else [])
        planes, geometry = [], []
        for plane, (rows, cols) in zip(img.components, grids):
            (r0, r1), (c0, c1) = _blocks_under(rows), _blocks_under(cols)
            planes.append(torch.from_numpy(np.ascontiguousarray(plane[r0:r1, c0:c1])))
            geometry.append([_axis_row(rows, BLOCK * r0), _axis_row(cols, BLOCK * c0)])
        tables = torch.from_numpy(np.asarray(img.qt[: len(planes)], np.float32).reshape(len(planes), 64))
        if img.cb is None:  # grayscale: neutral chroma, zero blocks over a valid box
            zero = torch.zeros((1, 1, 64), dtype=torch.int16)
            box = [[0.0, BLOCK / (height // 2), height // 2, 0.0, BLOCK, 0.0],
                   [0.0, BLOCK / (width // 2), width // 2, 0.0, BLOCK, 0.0]]
            planes += [zero, zero]
            geometry += [box, box]
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
    geometry: torch.Tensor  # float64 (B, 3, 2, 6): per plane, rows and columns (_GEOMETRY_FIELDS)
    layout: torch.Tensor  # int64 (groups, 5): samples, Hy, Wy, Hc, Wc (blocks)


def _pack_planes(planes: Sequence[np.ndarray], rows: int, cols: int, masks: list, values: list) -> None:
    """Appends the sparse form of ``planes`` padded to ``(rows, cols)`` blocks."""
    padded = np.zeros((len(planes), rows, cols, 8), np.uint8)
    for i, plane in enumerate(planes):
        nonzero = plane != 0
        padded[i, : plane.shape[0], : plane.shape[1]] = np.packbits(nonzero, axis=-1, bitorder="little")
        values.append(plane[nonzero])
    masks.append(padded.reshape(-1, 8))


def collate_packets(samples: Sequence, group: int = 16):
    """Batches :class:`ToPacket` outputs (or ``(packet, target)`` pairs) into a
    :class:`PackedBatch`.

    Samples are sorted by luma area and padded in groups of ``group`` (padding to the
    batch's largest would multiply many times the products on the GPU). Returns the
    batch, or ``(batch, targets)`` with the targets in the same, sorted, order.
    """
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


def _area(packet) -> int:
    return packet[0].shape[0] * packet[0].shape[1]


def _to_device(tensors, device) -> list[torch.Tensor]:
    """``tensors`` on ``device`` (queued copies from pinned memory), or as they are for None."""
    return [t.to(device, non_blocking=True) if device is not None else t for t in tensors]


def unpack_blocks(packed: PackedBatch, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The dense padded blocks of a :class:`PackedBatch`, on ``device``: per group, luma
    ``(n, Hy, Wy, 64)`` and chroma ``(2n, Hc, Wc, 64)``, int16."""
    layout = packed.layout.tolist()  # on the CPU as collated: no device sync
    masks, values = _to_device(packed[:2], device)
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
    start, scale, _, lo, hi, flip = (geometry[:, k, None] for k in range(_GEOMETRY_FIELDS))
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
        tables, geometry = _to_device(packets[2:4], device)
        outputs, first = [], 0
        for y, chroma in unpack_blocks(packets, device):
            n = y.shape[0]
            outputs.append(_resample_group(y, chroma, tables[first:first + n], geometry[first:first + n], height, width))
            first += n
        return torch.cat([y for y, _ in outputs]), torch.cat([c for _, c in outputs])
    y, cb, cr, tables, geometry = _to_device(packets, device)
    height, width = _output_size(geometry)
    return _resample_group(y, torch.cat([cb, cr]), tables, geometry, height, width)


# --- encoded files for GPU decoders -------------------------------------------------


def folder_samples(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """ImageFolder's ``(samples, classes)`` of JPEG files under ``root/class_x/``."""
    dataset = DCTImageFolder(root)
    return dataset.samples, dataset.classes


class EncodedJPEGs(Dataset):
    """``(path, target)`` samples -> ``((bytes, box, flip), target)`` for GPU decoders.

    The box (top, left, height, width; pixels) is drawn from the header only
    (:func:`dctload.read_header`), with torchvision's ``RandomResizedCrop`` parameters for
    the train recipe; for validation it is the whole image. Unreadable headers raise
    ``JPEGError`` naming the file.
    """

    def __init__(self, samples: Sequence[tuple[str, int]], train: bool, scale=(0.08, 1.0),
                 ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.samples, self.train, self.scale, self.ratio = list(samples), train, scale, ratio

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        with open(path, "rb") as f:
            encoded = f.read()
        try:
            header = read_header(encoded)
        except JPEGError as exc:
            raise type(exc)(exc.reason, source=path, code=exc.code) from None
        height, width = header["height"], header["width"]
        if self.train:
            box = transforms.RandomResizedCrop.get_params(height, width, self.scale, self.ratio)
            flip = bool(torch.rand(()) < 0.5)
        else:
            box, flip = (0, 0, height, width), False
        data = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
        return (data, torch.tensor(box), flip, path), target


def collate_encoded(samples: Sequence) -> tuple:
    data = [s[0][0] for s in samples]
    boxes = torch.stack([s[0][1] for s in samples])
    flips = torch.tensor([s[0][2] for s in samples])
    paths = [s[0][3] for s in samples]
    return (data, boxes, flips, paths), torch.utils.data.default_collate([s[1] for s in samples])


def decode_on_gpu(data: Sequence[torch.Tensor], paths: Sequence[str], device) -> list[torch.Tensor]:
    """Batched nvJPEG decoding to RGB; a file nvJPEG refuses (CMYK, say) is decoded on the
    CPU instead, and one neither can decode raises ``JPEGError`` naming it."""
    mode = torchvision.io.ImageReadMode.RGB
    try:
        return torchvision.io.decode_jpeg(list(data), mode=mode, device=device)
    except RuntimeError:
        pass
    images = []
    for encoded, path in zip(data, paths):
        try:
            images.append(torchvision.io.decode_jpeg(encoded, mode=mode, device=device))
        except RuntimeError:
            try:
                images.append(torchvision.io.decode_jpeg(encoded, mode=mode).to(device))
            except RuntimeError as exc:
                raise JPEGError(str(exc), source=path, code="decode_failed") from None
    return images


def geometry_on_gpu(images: Sequence[torch.Tensor], boxes: torch.Tensor, flips: torch.Tensor,
                    train: bool, size: int) -> torch.Tensor:
    """torchvision's recipes on decoded images, in float (no rounding): resized crop of
    each box to ``size`` (+ flip), or Resize(resize_size) + CenterCrop(size)."""
    out = []
    for image, (top, left, height, width), flip in zip(images, boxes.tolist(), flips.tolist()):
        image = image.float()
        if train:
            image = v2.resized_crop(image, top, left, height, width, [size, size], antialias=True)
        else:
            image = v2.center_crop(v2.resize(image, [transforms.resize_size(size)], antialias=True), [size, size])
        out.append(image.flip(-1) if flip else image)
    return torch.stack(out)


# --- the loader ----------------------------------------------------------------------


def require_cuda(backend: str, device) -> torch.device:
    """``device`` (default CUDA) as a torch.device; a clear error where CUDA is asked for
    and absent."""
    device = torch.device(device if device is not None else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"the {backend!r} GPU backend needs CUDA, which torch does not see here; "
                           "use the CPU loader (dctload.DCTImageFolder) instead")
    return device


class GPULoader:
    """``((y, cbcr), targets)`` batches on a GPU, with a DataLoader's interface
    (``len``, iteration, ``sampler.set_epoch``), from ``(path, target)`` samples.

    ``backend``: ``"coefficients"`` (workers entropy-decode, the GPU resamples the
    coefficients exactly) or ``"nvjpeg"`` (workers read bytes, the GPU decodes to pixels
    and converts). ``channels``: a channel subset (:func:`dctload.batch.channel_indices`).
    Sharding for DistributedDataParallel is by ``rank``/``world``: a DistributedSampler
    for training, strided shards for validation (every file once, no padding).
    ``dataset``: the underlying dataset (``DCTImageFolder.skipped()`` for on_error="skip").
    """

    def __init__(self, samples: Sequence[tuple[str, int]], backend: str = "coefficients", train: bool = True,
                 size: int = 224, batch_size: int = 64, workers: int = 4, device=None, channels=None,
                 rank: int = 0, world: int = 1, seed: int = 0, scale=(0.08, 1.0), on_error: str = "raise"):
        if backend not in ("coefficients", "nvjpeg"):
            raise ValueError(f"GPULoader backends are 'coefficients' and 'nvjpeg' (DALI: dctload.dali), not {backend!r}")
        self.device = require_cuda(backend, device)
        self.backend, self.train, self.size = backend, train, size
        self.channels = None if channels is None else tuple(t.to(self.device) for t in batch.channel_indices(channels))
        if backend == "coefficients":
            dataset = DCTImageFolder.from_samples(samples, transforms.imagenet(train, size, scale, last=ToPacket()), on_error=on_error)
            collate = collate_packets
        else:
            if on_error != "raise":
                raise ValueError("the nvjpeg backend raises on bad files (on_error='raise')")
            dataset, collate = EncodedJPEGs(samples, train, scale), collate_encoded
        self.dataset = dataset
        if train:
            self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                              drop_last=False)
        else:  # every file once over all ranks: strided shards, no padding (as nets.data.val_loader)
            dataset, self.sampler = Subset(dataset, range(rank, len(dataset), world)), None
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate, pin_memory=self.device.type == "cuda", drop_last=train,
                                 persistent_workers=workers > 0, worker_init_fn=_one_thread if workers else None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for inputs, targets in self.loader:
            if self.backend == "coefficients":
                y, cbcr = resample_packets(inputs, self.device)  # inputs: a PackedBatch
            else:
                data, boxes, flips, paths = inputs
                images = decode_on_gpu(data, paths, self.device)
                y, cbcr = pixels_to_batch(geometry_on_gpu(images, boxes, flips, self.train, self.size))
            if self.channels is not None:
                y, cbcr = y.index_select(1, self.channels[0]), cbcr.index_select(1, self.channels[1])
            yield (y, cbcr), targets.to(self.device, non_blocking=True)


def _one_thread(_):
    torch.set_num_threads(1)

"""The network input contract: what a batch of DCT coefficients is.

Every producer of network input in dctload (the CPU transforms, the DALI and GPU
paths) yields this, and every DCT network in ``nets`` consumes it:

A batch is ``(y, cbcr)``:

- ``y``: float32 ``(B, 64, S_h / 8, S_w / 8)``, the luma coefficients;
- ``cbcr``: float32 ``(B, 128, S_h / 16, S_w / 16)``, Cb in channels 0-63, Cr in 64-127;

the dequantized DCT coefficients (JPEG units: ``q * Q``, the orthonormal 8x8 DCT-II of
the level-shifted samples) of the augmented image as a 4:2:0 image of ``S_h x S_w``
pixels, channel ``k = 8 * v + u`` (natural order, ``v`` the vertical frequency). A
grayscale image has all-zero ``cbcr`` (neutral chroma).

Normalization per component and frequency is a separate, explicit step after this
(:class:`dctload.transforms.Normalize` on the CPU, ``nets.Normalize`` at the front of a
network for GPU batches): JPEG-DL's requantization must see coefficients in JPEG units.
A channel subset (:func:`channel_indices`) keeps chosen frequencies; DCT networks take
the reduced channel counts.
"""

from __future__ import annotations

from typing import Sequence

import torch

LUMA_CHANNELS = 64
CHROMA_CHANNELS = 128

#: Named channel subsets: (luma frequencies, chroma frequencies within each of Cb, Cr).
#: ``dctnet24``: the 24 low-frequency channels of DCTNet (Xu et al., CVPR 2020):
#: Y 0-3, 8-11, 16-19, 24-27 and Cb, Cr 0, 1, 8, 9.
CHANNEL_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "all": (tuple(range(64)), tuple(range(64))),
    "dctnet24": ((0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27), (0, 1, 8, 9)),
}


def channel_indices(
    subset: str | tuple[Sequence[int], Sequence[int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel indices into ``y`` and ``cbcr`` for a preset name or (luma, chroma)
    frequency lists (chroma frequencies are taken from both Cb and Cr)."""
    if isinstance(subset, str):
        if subset not in CHANNEL_PRESETS:
            raise ValueError(f"unknown channel preset {subset!r}; known: {sorted(CHANNEL_PRESETS)}")
        subset = CHANNEL_PRESETS[subset]
    luma, chroma = (sorted(set(int(k) for k in s)) for s in subset)
    for k in (*luma, *chroma):
        if not 0 <= k < 64:
            raise ValueError(f"frequency index {k} is outside 0-63")
    return torch.tensor(luma), torch.tensor(chroma + [k + 64 for k in chroma])


def check(y: torch.Tensor, cbcr: torch.Tensor) -> None:
    """Raises ValueError unless ``(y, cbcr)`` (one sample or a batch) has the contract's
    geometry: chroma at half the luma's block grid."""
    if y.shape[:-3] != cbcr.shape[:-3] or y.ndim not in (3, 4):
        raise ValueError(f"y {tuple(y.shape)} and cbcr {tuple(cbcr.shape)} are not one (batch of) sample(s)")
    if y.shape[-2] != 2 * cbcr.shape[-2] or y.shape[-1] != 2 * cbcr.shape[-1]:
        raise ValueError(f"cbcr {tuple(cbcr.shape)} is not at half the luma grid of y {tuple(y.shape)}")


class FilledBatch(list):
    """Samples already laid out as one batch (``DCTImageFolder.load_batch``): a list of
    ``((y, cbcr), target)`` views into ``inputs``; :func:`collate` returns ``(inputs,
    targets)`` without copying."""

    def __init__(self, inputs: tuple[torch.Tensor, torch.Tensor], targets: Sequence):
        y, cbcr = inputs
        super().__init__(((y[i], cbcr[i]), t) for i, t in enumerate(targets))
        self.inputs = inputs
        self.targets = targets


def collate(batch: Sequence) -> tuple:
    """Stacks ``((y, cbcr), target)`` samples (or bare ``(y, cbcr)``) into the batch
    contract: ``((Y, CbCr), targets)``. Use as a DataLoader's ``collate_fn``."""
    if isinstance(batch, FilledBatch):
        return batch.inputs, torch.utils.data.default_collate(list(batch.targets))
    if not batch:
        raise ValueError("cannot collate an empty batch")
    first = batch[0]
    if isinstance(first[0], torch.Tensor):  # bare (y, cbcr) samples
        return _stack([sample for sample in batch])
    inputs = _stack([sample[0] for sample in batch])
    targets = torch.utils.data.default_collate([sample[1] for sample in batch])
    return inputs, targets


def _stack(samples: list) -> tuple[torch.Tensor, torch.Tensor]:
    shapes = {(tuple(y.shape), tuple(c.shape)) for y, c in samples}
    if len(shapes) > 1:
        raise ValueError(f"samples of different sizes cannot be batched: {sorted(shapes)[:3]}; crop to one size")
    y = torch.stack([y for y, _ in samples])
    cbcr = torch.stack([c for _, c in samples])
    return y, cbcr

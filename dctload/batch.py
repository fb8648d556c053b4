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
(:class:`Normalize`: a transform of the CPU recipe, or the first layer of a DCT model for
GPU batches): JPEG-DL's requantization must see coefficients in JPEG units. A channel
subset (:func:`channel_indices`, :func:`select_channels`) keeps chosen frequencies; DCT
networks take the reduced channel counts (:func:`channel_counts`).
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import nn

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


def channel_counts(subset) -> tuple[int, int]:
    """(luma, chroma) channel counts of a subset: a DCT network's ``in_channels``."""
    luma, chroma = channel_indices(subset)
    return len(luma), len(chroma)


def select_channels(y: torch.Tensor, cbcr: torch.Tensor, subset) -> tuple[torch.Tensor, torch.Tensor]:
    """The frequencies of ``subset`` of one sample or a batch, on the tensors' device (the
    indices are made once per subset and device: no host-to-device copy per batch)."""
    luma, chroma = _indices_on(_hashable(subset), y.device)
    return y.index_select(-3, luma), cbcr.index_select(-3, chroma)


def _hashable(subset):
    return subset if isinstance(subset, str) else tuple(tuple(int(k) for k in part) for part in subset)


@functools.lru_cache(maxsize=None)
def _indices_on(subset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(indices.to(device) for indices in channel_indices(subset))


def tensors(sample, step: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``sample`` as ``(y, cbcr)`` tensors, or a TypeError that says where ``step`` goes."""
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2 and all(isinstance(x, torch.Tensor) for x in sample)):
        raise TypeError(f"{step} takes the (y, cbcr) tensors of ToTensor, not {type(sample).__name__}: "
                        "put it after ToTensor()")
    return sample[0], sample[1]


class Normalize(nn.Module):
    """``(x - mean) / std`` per component and frequency, of one ``(y, cbcr)`` sample or a
    batch, on any device: a step of a CPU recipe (``transforms.Compose``), or a DCT
    model's first layer (``nets.DCTModel``) for batches made on a GPU.

    ``mean``, ``std``: (luma, chroma) values, 64 and 128 for the full contract, e.g. from
    ``dctload stats FOLDER`` (:func:`dctload.stats.load`); :meth:`select` keeps a
    channel subset's."""

    def __init__(self, mean: Sequence, std: Sequence):
        super().__init__()
        for name, values in (("y_mean", mean[0]), ("cbcr_mean", mean[1]), ("y_std", std[0]), ("cbcr_std", std[1])):
            self.register_buffer(name, torch.as_tensor(values, dtype=torch.float32).reshape(-1).clone())
        if self.y_mean.shape != self.y_std.shape or self.cbcr_mean.shape != self.cbcr_std.shape:
            raise ValueError(f"mean and std differ in length: {tuple(self.y_mean.shape)} against "
                             f"{tuple(self.y_std.shape)}, {tuple(self.cbcr_mean.shape)} against {tuple(self.cbcr_std.shape)}")
        if not bool((self.y_std > 0).all() and (self.cbcr_std > 0).all()):
            raise ValueError("std must be positive")

    def select(self, subset) -> "Normalize":
        """The statistics of a channel subset (:func:`channel_indices`), for batches that
        carry only those channels."""
        luma, chroma = channel_indices(subset)
        return Normalize((self.y_mean[luma], self.cbcr_mean[chroma]), (self.y_std[luma], self.cbcr_std[chroma]))

    def _statistics(self, y: torch.Tensor, cbcr: torch.Tensor):
        for x, m in ((y, self.y_mean), (cbcr, self.cbcr_mean)):
            if x.shape[-3] != m.shape[0]:
                raise ValueError(f"statistics for {m.shape[0]} channels given to {x.shape[-3]} channels; "
                                 "normalize before selecting channels, or use Normalize.select")
        return ((self.y_mean[:, None, None], self.y_std[:, None, None]),
                (self.cbcr_mean[:, None, None], self.cbcr_std[:, None, None]))

    def forward(self, y, cbcr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``normalize(y, cbcr)`` (a model's layer) or ``normalize((y, cbcr))`` (a transform)."""
        if cbcr is None:
            y, cbcr = tensors(y, "Normalize")
        (ym, ys), (cm, cs) = self._statistics(y, cbcr)
        return (y - ym) / ys, (cbcr - cm) / cs

    @torch.no_grad()
    def normalize_(self, y: torch.Tensor, cbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """In place, for a batch its caller owns (shared memory stays shared)."""
        for x, (m, s) in zip((y, cbcr), self._statistics(y, cbcr)):
            x.sub_(m).div_(s)
        return y, cbcr

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints before 0.2 kept the statistics as (1, C, 1, 1).
        for name in ("y_mean", "cbcr_mean", "y_std", "cbcr_std"):
            if prefix + name in state_dict:
                state_dict[prefix + name] = state_dict[prefix + name].reshape(-1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.y_mean.shape[0]} + {self.cbcr_mean.shape[0]} channels"


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

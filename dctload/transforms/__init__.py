"""DCT-domain augmentation, composable like ``torchvision.transforms``.

Crops, resizes and flips are exact on the coefficients: each output equals, within
float32 rounding, dequantize -> inverse DCT (float, no rounding or clamping) -> the same
crop and antialiased bilinear resize as torchvision -> flip -> forward DCT. The train and
validation recipes of an ImageNet script::

    train = Compose([RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(), Normalize(*stats)])
    val = Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(*stats)])

``ToTensor`` yields the batch contract's ``(y, cbcr)`` (:mod:`dctload.batch`); geometric
transforms before it only record what to compute.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import Compose
from torchvision.transforms import RandomResizedCrop as _TorchvisionRandomResizedCrop

from . import functional as F
from .functional import DCTView

__all__ = [
    "CenterCrop", "Compose", "DCTView", "Normalize", "RandomHorizontalFlip",
    "RandomResizedCrop", "Resize", "SelectChannels", "ToTensor", "F", "imagenet", "resize_size",
]


class Transform:
    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class RandomResizedCrop(Transform):
    """A random box of area ``scale`` and aspect ``ratio``, resized to ``size``: the box
    is drawn by torchvision's own ``RandomResizedCrop.get_params`` (same random stream)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.size = [size, size] if isinstance(size, int) else list(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    @staticmethod
    def get_params(height: int, width: int, scale, ratio) -> tuple[int, int, int, int]:
        """(top, left, height, width) of a random box, from torchvision's own ``get_params``."""
        # get_params only reads the shape: a stride-0 expansion allocates nothing.
        shape_only = torch.empty(()).expand(height, width)
        return tuple(_TorchvisionRandomResizedCrop.get_params(shape_only, scale, ratio))

    def __call__(self, image) -> DCTView:
        top, left, h, w = self.get_params(*F.get_dimensions(image), self.scale, self.ratio)
        return F.resized_crop(image, top, left, h, w, self.size)


class Resize(Transform):
    """torchvision's ``Resize(size)`` (antialiased bilinear): an int is the shorter side."""

    def __init__(self, size):
        self.size = size

    def __call__(self, image) -> DCTView:
        return F.resize(image, self.size)


class CenterCrop(Transform):
    def __init__(self, size):
        self.size = size

    def __call__(self, image) -> DCTView:
        return F.center_crop(image, self.size)


class RandomHorizontalFlip(Transform):
    """Flips with probability ``p``, drawing ``torch.rand(1)`` as torchvision does."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image) -> DCTView:
        return F.hflip(image) if torch.rand(1) < self.p else DCTView.of(image)


class ToTensor(Transform):
    """Computes the pending geometry: ``(y, cbcr)`` float32 in JPEG units."""

    def __call__(self, image) -> tuple[torch.Tensor, torch.Tensor]:
        return F.to_tensor(image)


class Normalize(Transform):
    """``(x - mean) / std`` per component and frequency. ``mean``, ``std``: pairs of
    (64 luma, 128 chroma) values, e.g. from :func:`dctload.stats.estimate` or
    ``dctload stats FOLDER`` (``Normalize.from_file``)."""

    def __init__(self, mean: Sequence, std: Sequence):
        self.mean = tuple(torch.as_tensor(m, dtype=torch.float32) for m in mean)
        self.std = tuple(torch.as_tensor(s, dtype=torch.float32) for s in std)
        for m, s, n in zip(self.mean, self.std, (64, 128)):
            if m.shape != (n,) or s.shape != (n,):
                raise ValueError(f"mean and std need ({n},) values per component, got {tuple(m.shape)}, {tuple(s.shape)}")
            if not bool((s > 0).all()):
                raise ValueError("std must be positive")

    @classmethod
    def from_file(cls, path) -> "Normalize":
        from .. import stats

        loaded = stats.load(path)
        return cls(loaded.mean, loaded.std)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(64 + 128 channels)"

    def __call__(self, sample):
        return F.normalize(sample, self.mean, self.std)


class SelectChannels(Transform):
    """Keeps a frequency subset: a preset name (``"dctnet24"``) or (luma, chroma) lists."""

    def __init__(self, subset):
        self.subset = subset
        F.select_channels((torch.zeros(64, 2, 2), torch.zeros(128, 1, 1)), subset)  # validate now

    def __call__(self, sample):
        return F.select_channels(sample, self.subset)


def resize_size(size: int) -> int:
    """The validation resize for a crop of ``size``: ImageNet's 256 for 224."""
    return round(size * 256 / 224)


def imagenet(train: bool, size: int = 224, scale=(0.08, 1.0), channels=None, last=None) -> Compose:
    """ImageNet's recipe in JPEG units: RandomResizedCrop(size, scale) + flip for training,
    Resize(256/224 x size) + CenterCrop(size) for validation, then ``last`` (default
    :class:`ToTensor`; :class:`dctload.gpu.ToPacket` for GPU resampling) and an optional
    channel subset. Normalization is left to the model (after any requantization)."""
    steps = [RandomResizedCrop(size, scale), RandomHorizontalFlip()] if train else \
        [Resize(resize_size(size)), CenterCrop(size)]
    steps.append(last if last is not None else ToTensor())
    if channels is not None:
        steps.append(SelectChannels(channels))
    return Compose(steps)

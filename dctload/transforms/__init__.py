"""DCT-domain augmentation, composable like ``torchvision.transforms``.

Crops, resizes and flips are exact on the coefficients: each output equals, within
float32 rounding, dequantize -> inverse DCT (float, no rounding or clamping) -> the same
crop and antialiased bilinear resize as torchvision -> flip -> forward DCT. The train and
validation recipes of an ImageNet script::

    train = Compose([RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(), Normalize(mean, std)])
    val = Compose([Resize(256), CenterCrop(224), ToTensor(), Normalize(mean, std)])

(:class:`dctload.Recipe` builds these from one description that every loader backend
reads.) ``ToTensor`` yields the batch contract's ``(y, cbcr)`` (:mod:`dctload.batch`);
geometric transforms before it only record what to compute. ``Normalize`` is
:class:`dctload.batch.Normalize`, the same class a DCT model puts first.
"""

from __future__ import annotations

import torch
from torchvision.transforms import Compose
from torchvision.transforms import RandomResizedCrop as _TorchvisionRandomResizedCrop

from .. import batch
from ..batch import Normalize
from . import functional as F
from .functional import DCTView

__all__ = [
    "CenterCrop", "Compose", "DCTView", "Geometry", "Normalize", "RandomHorizontalFlip",
    "RandomResizedCrop", "Resize", "SelectChannels", "ToTensor", "F",
]


class Transform:
    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Geometry(Transform):
    """A step that only records geometry on a :class:`DCTView` (``ToTensor`` computes it):
    the batch path (:mod:`dctload.fused`) draws every such step from file headers."""


class RandomResizedCrop(Geometry):
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


class Resize(Geometry):
    """torchvision's ``Resize(size)`` (antialiased bilinear): an int is the shorter side."""

    def __init__(self, size):
        self.size = size

    def __call__(self, image) -> DCTView:
        return F.resize(image, self.size)


class CenterCrop(Geometry):
    def __init__(self, size):
        self.size = size

    def __call__(self, image) -> DCTView:
        return F.center_crop(image, self.size)


class RandomHorizontalFlip(Geometry):
    """Flips with probability ``p``, drawing ``torch.rand(1)`` as torchvision does."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image) -> DCTView:
        return F.hflip(image) if torch.rand(1) < self.p else DCTView.of(image)


class ToTensor(Transform):
    """Computes the pending geometry: ``(y, cbcr)`` float32 in JPEG units."""

    def __call__(self, image) -> tuple[torch.Tensor, torch.Tensor]:
        return F.to_tensor(image)


class SelectChannels(Transform):
    """Keeps a frequency subset of ``(y, cbcr)``: a preset name (``"dctnet24"``) or
    (luma, chroma) lists (:func:`dctload.batch.select_channels`)."""

    def __init__(self, subset):
        self.subset = subset
        batch.channel_indices(subset)  # validate now

    def __call__(self, sample):
        return batch.select_channels(*batch.tensors(sample, "SelectChannels"), self.subset)

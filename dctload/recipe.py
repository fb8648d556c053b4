"""One description of the augmentation recipe, read by every loader backend.

A :class:`Recipe` says what an ImageNet script's transforms say - train or validation,
crop size, RandomResizedCrop's scale and ratio, the flip probability, a channel subset -
and renders it for each backend's operators, all here:

- :meth:`Recipe.geometry` / :meth:`Recipe.dct_transform`: :mod:`dctload.transforms` on
  coefficients (backends ``cpu``, ``coefficients``, ``dali-hybrid``);
- :meth:`Recipe.rgb_transform`: torchvision's transforms.v2 on decoded pixels (the RGB
  baseline of ``cpu``);
- :meth:`Recipe.draw` and :meth:`Recipe.on_pixels`: the draws from a file's header and
  their application to pixels a GPU decoded (``nvjpeg``);
- :meth:`Recipe.dali_images`: DALI operators (``dali``, DCT and RGB output).

So a change to the recipe is made once, in this module, and reaches every backend; the
DCT and RGB contestants of a benchmark read the same object. Draws use torchvision's own
``RandomResizedCrop.get_params`` (and ``torch.rand`` for the flip) wherever Python draws.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from . import batch
from . import transforms as T
from .pixels import IMAGENET_MEAN, IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class Recipe:
    """ImageNet's recipe: for training, RandomResizedCrop(``size``, ``scale``, ``ratio``)
    and a horizontal flip with probability ``flip``; for validation, Resize(256/224 x
    ``size``) and CenterCrop(``size``). ``channels``: a DCT channel subset (preset name or
    (luma, chroma) lists, :func:`dctload.batch.channel_indices`), or None for all.
    Normalization is left to the model (after any requantization); pass ``normalize`` to
    :meth:`dct_transform` to normalize in the loader instead."""

    train: bool = True
    size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip: float = 0.5
    channels: str | tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        object.__setattr__(self, "ratio", tuple(float(r) for r in self.ratio))
        if self.size <= 0 or self.size % 16:
            raise ValueError(f"size must be a positive multiple of 16 (whole 4:2:0 MCUs), not {self.size}")
        if not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip is a probability, not {self.flip}")
        if self.channels is not None:
            batch.channel_indices(self.channels)  # validate now

    @classmethod
    def val(cls, size: int = 224, **fields) -> "Recipe":
        return cls(train=False, size=size, **fields)

    @property
    def resize_size(self) -> int:
        """The validation resize for a crop of ``size``: ImageNet's 256 for 224."""
        return round(self.size * 256 / 224)

    # ---- coefficients (dctload.transforms) ----

    def geometry(self) -> list:
        """The geometric steps as :mod:`dctload.transforms` (lazy, exact on coefficients)."""
        if self.train:
            return [T.RandomResizedCrop(self.size, self.scale, self.ratio), T.RandomHorizontalFlip(self.flip)]
        return [T.Resize(self.resize_size), T.CenterCrop(self.size)]

    def dct_transform(self, normalize: batch.Normalize | None = None) -> T.Compose:
        """Geometry, ``ToTensor`` (the batch contract), an optional ``Normalize`` (of all
        64 + 128 channels), then the channel subset."""
        steps = [*self.geometry(), T.ToTensor()]
        if normalize is not None:
            steps.append(normalize)
        if self.channels is not None:
            steps.append(T.SelectChannels(self.channels))
        return T.Compose(steps)

    def packet_transform(self) -> T.Compose:
        """Geometry, then :class:`dctload.packets.ToPacket`: the blocks under each box for
        exact resampling on the GPU (``coefficients``, ``dali-hybrid``; channels are kept
        there by :meth:`select`)."""
        from .packets import ToPacket

        return T.Compose([*self.geometry(), ToPacket()])

    def select(self, y: torch.Tensor, cbcr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The recipe's channel subset of a batch made by a backend that resamples or
        converts on the GPU (the indices kept on the batch's device: no copy per batch)."""
        return (y, cbcr) if self.channels is None else batch.select_channels(y, cbcr, self.channels)

    # ---- pixels ----

    def rgb_transform(self):
        """torchvision's recipe on decoded uint8 tensors (transforms.v2), normalized RGB."""
        import torchvision.transforms.v2 as v2

        if self.train:
            geometry = [v2.RandomResizedCrop(self.size, self.scale, self.ratio, antialias=True),
                        v2.RandomHorizontalFlip(self.flip)]
        else:
            geometry = [v2.Resize(self.resize_size, antialias=True), v2.CenterCrop(self.size)]
        return v2.Compose([*geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def draw(self, height: int, width: int) -> tuple[tuple[int, int, int, int], tuple[bool, ...]]:
        """The recipe's random draws for an image of ``height`` x ``width`` pixels (from
        its header), in the DCT path's order: the box (top, left, height, width) and the
        flips that :meth:`on_pixels` applies (the whole image, no flip, for validation)."""
        if not self.train:
            return (0, 0, height, width), (False,)
        box = T.RandomResizedCrop.get_params(height, width, self.scale, self.ratio)
        return box, (bool(torch.rand(1) < self.flip),)

    def on_pixels(self, image: torch.Tensor, box: Sequence[int], flips: Sequence[bool]) -> torch.Tensor:
        """A decoded (3, H, W) image through the recipe with the draws of :meth:`draw`, in
        float (no rounding), on the image's device: 0..255, not normalized."""
        import torchvision.transforms.v2.functional as v2

        image = image.float()
        if self.train:
            top, left, height, width = box
            image = v2.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
        else:
            image = v2.center_crop(v2.resize(image, [self.resize_size], antialias=True), [self.size, self.size])
        return image.flip(-1) if flips[0] else image

    def dali_images(self, dali, jpegs, decoder: str, decoder_args: dict):
        """The recipe as DALI operators on encoded ``jpegs``: (float HWC RGB images in
        0..255, mirror flags). Train: ``fn.decoders.image_random_crop`` (RandomResizedCrop's
        area and aspect ranges) -> resize to ``size`` -> coin-flip mirror. Validation:
        decode -> torchvision's Resize -> CenterCrop. Resizes are antialiased linear."""
        fn, types = dali.fn, dali.types
        if self.train:
            images = fn.decoders.image_random_crop(jpegs, device=decoder, output_type=types.RGB,
                                                   random_area=list(self.scale), random_aspect_ratio=list(self.ratio),
                                                   num_attempts=10, **decoder_args)
            images = fn.resize(images, resize_x=self.size, resize_y=self.size, antialias=True, dtype=types.FLOAT)
            return images, fn.random.coin_flip(probability=self.flip)
        images = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB, **decoder_args)
        return _dali_center_crop(dali, _dali_resize_shorter(dali, images, jpegs, self.resize_size), self.size), 0


def _dali_resize_shorter(dali, images, jpegs, short: int):
    """torchvision's ``Resize(short)`` in DALI: the longer side is truncated, not rounded,
    and the scale is the integer sizes' ratio (DALI's ``resize_shorter`` rounds and keeps
    a subpixel scale, which moves every sample)."""
    shape = dali.fn.peek_image_shape(jpegs, dtype=dali.types.FLOAT)
    height, width = shape[0], shape[1]
    shorter = dali.math.min(height, width)
    return dali.fn.resize(images, resize_y=dali.math.floor(short * height / shorter),
                          resize_x=dali.math.floor(short * width / shorter), antialias=True,
                          subpixel_scale=False, dtype=dali.types.FLOAT)


def _dali_center_crop(dali, images, size: int):
    """torchvision's ``CenterCrop`` in DALI: offset ``round((side - size) / 2)``, halves to even."""
    shape = dali.fn.cast(images.shape(), dtype=dali.types.FLOAT)

    def offset(side):
        excess = side - size
        half = dali.math.floor(excess / 2)
        odd_half = half - 2 * dali.math.floor(half / 2)
        return half + (excess - 2 * half) * odd_half

    anchor = dali.fn.stack(offset(shape[0]), offset(shape[1]))
    extent = dali.types.Constant([size, size], dtype=dali.types.FLOAT)
    return dali.fn.slice(images, anchor, extent, axes=[0, 1], normalized_anchor=False,
                         normalized_shape=False)

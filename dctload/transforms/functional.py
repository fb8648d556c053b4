"""Functional forms of the DCT-domain transforms.

Geometry is lazy: crops, resizes and flips only update a :class:`DCTView` (one
:class:`~dctload.coefficients.AxisMap` per axis); :func:`to_tensor` then computes the
output in one exact pass per component (:func:`dctload.coefficients.resample_into`, in C).
Composition follows torchvision: a crop of a resized image selects output samples of
that resize; a resize of a cropped image filters over the crop (RandomResizedCrop).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from .. import coefficients
from ..coefficients import AxisMap
from ..errors import UnsupportedJPEGError
from ..reader import DCTImage


@dataclasses.dataclass(frozen=True)
class DCTView:
    """A DCTImage seen through pending geometry. ``rows``/``cols`` map output luma
    samples to the image's luma samples; ``resized`` is True after a resize."""

    image: DCTImage
    rows: AxisMap
    cols: AxisMap
    resized: bool = False

    @classmethod
    def of(cls, image: DCTImage | DCTView) -> DCTView:
        if isinstance(image, DCTView):
            return image
        if not isinstance(image, DCTImage):
            raise TypeError(f"DCT transforms take a DCTImage or DCTView, not {type(image).__name__}")
        return cls(image, AxisMap.identity(image.height), AxisMap.identity(image.width))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the output in luma pixels."""
        return self.rows.size, self.cols.size


def get_dimensions(image: DCTImage | DCTView) -> tuple[int, int]:
    """(height, width) in pixels, after pending geometry."""
    return DCTView.of(image).size


def _crop_axis(axis: AxisMap, offset: int, length: int, resized: bool) -> AxisMap:
    if offset < 0 or length <= 0 or offset + length > axis.size:
        raise ValueError(f"crop [{offset}, {offset + length}) is outside the image's 0-{axis.size} pixels")
    if axis.flip:  # the crop is given in flipped coordinates
        offset = axis.size - offset - length
    start = axis.start + axis.scale * offset
    if resized:  # select outputs of the resize; its filter still sees the whole region
        return dataclasses.replace(axis, start=start, size=length)
    return AxisMap(start, axis.scale, length, start, start + length, axis.flip)


def crop(image, top: int, left: int, height: int, width: int) -> DCTView:
    """Crops to the box (pixels, after pending geometry), like ``torchvision...crop``
    but without padding: a box outside the image is an error."""
    view = DCTView.of(image)
    return dataclasses.replace(
        view,
        rows=_crop_axis(view.rows, int(top), int(height), view.resized),
        cols=_crop_axis(view.cols, int(left), int(width), view.resized),
    )


def resize(image, size: int | Sequence[int]) -> DCTView:
    """Antialiased bilinear resize, torchvision's ``Resize(size)`` semantics: an int is
    the shorter side (the longer one is truncated), a pair is (height, width).

    One resize per pipeline: a second would filter twice, which a single pass cannot
    reproduce exactly; crop first, then resize once (as RandomResizedCrop does).
    """
    view = DCTView.of(image)
    if view.resized:
        raise ValueError("the view is already resized: compose crops around a single resize")
    height, width = view.size
    if isinstance(size, int) or len(size) == 1:
        short = size if isinstance(size, int) else size[0]
        if height <= width:
            out = (short, int(short * width / height))
        else:
            out = (int(short * height / width), short)
    else:
        out = (int(size[0]), int(size[1]))
    return DCTView(
        view.image,
        dataclasses.replace(view.rows, scale=view.rows.scale * height / out[0], size=out[0]),
        dataclasses.replace(view.cols, scale=view.cols.scale * width / out[1], size=out[1]),
        resized=True,
    )


def resized_crop(image, top: int, left: int, height: int, width: int, size: Sequence[int]) -> DCTView:
    """Crop, then resize the crop to ``size`` (height, width): torchvision's ``resized_crop``."""
    return resize(crop(image, top, left, height, width), list(size))


def center_crop(image, size: int | Sequence[int]) -> DCTView:
    """Crops the centre, placed as torchvision's ``center_crop`` places it."""
    out_h, out_w = (size, size) if isinstance(size, int) else (size[0], size[-1])
    height, width = get_dimensions(image)
    top, left = int(round((height - out_h) / 2.0)), int(round((width - out_w) / 2.0))
    return crop(image, top, left, out_h, out_w)


def hflip(image) -> DCTView:
    """Horizontal flip (exact: reversed blocks, odd horizontal frequencies negated)."""
    view = DCTView.of(image)
    return dataclasses.replace(view, cols=dataclasses.replace(view.cols, flip=not view.cols.flip))


def chroma_grids(view: DCTView) -> list[tuple[AxisMap, AxisMap]]:
    """(rows, cols) of Cb and Cr: the view's field of view on each chroma plane's own
    samples, sampled to half the output size (4:2:0), whatever the file's subsampling."""
    img = view.image
    height, width = view.size
    h_max = max(h for h, _ in img.sampling)
    v_max = max(v for _, v in img.sampling)
    return [(view.rows.subsampled(v_max / v, height // 2), view.cols.subsampled(h_max / h, width // 2))
            for h, v in img.sampling[1:]]


def to_tensor(image) -> tuple[torch.Tensor, torch.Tensor]:
    """Computes the view as the batch contract's ``(y, cbcr)`` (see :mod:`dctload.batch`).

    The output size must be whole 16x16 pixel MCUs (4:2:0). Each chroma plane is
    resampled from its own resolution, whatever the file's subsampling.
    """
    view = DCTView.of(image)
    height, width = view.size
    if height % 16 or width % 16:
        raise ValueError(f"output size {height}x{width} is not a multiple of 16 (whole 4:2:0 MCUs); add a crop")
    img = view.image
    y = torch.empty(64, height // 8, width // 8)
    cbcr = torch.zeros(2 * 64, height // 16, width // 16)
    try:
        coefficients.resample_into(img.y, img.qt[0], view.rows, view.cols, y.numpy())
        if img.cb is not None:
            chroma = cbcr.numpy().reshape(2, 64, *cbcr.shape[1:])
            for plane, table, grid, out in zip((img.cb, img.cr), img.qt[1:], chroma_grids(view), chroma):
                coefficients.resample_into(plane, table, *grid, out)
    except ValueError as exc:  # a layout the C path cannot take: the file's, so name it
        raise UnsupportedJPEGError(str(exc), img.source, "geometry") from None
    return y, cbcr

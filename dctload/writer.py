"""Writing quantized DCT coefficients back to a standard JPEG: the inverse of
:func:`dctload.read_coefficients`, through libjpeg's ``jpeg_write_coefficients``
(``csrc/reader.c``), so that a dataset can be prepared without leaving the DCT domain."""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np

from . import _reader
from .reader import DCTImage


def write_coefficients(image: DCTImage, file: str | os.PathLike | BinaryIO | None = None, *,
                       progressive: bool = False, optimize: bool = True) -> bytes:
    """The JPEG of ``image``'s quantized coefficients, tables and sampling, as bytes (also
    written to ``file``, a path or a binary file object, when given).

    Baseline, or libjpeg's simple progression (``progressive=True``); Huffman tables
    optimized for the image (``optimize=True``) or the standard ones. Reading a file and
    writing it back gives the same coefficients, tables and sampling, bit for bit. Bad
    arguments raise ``TypeError`` or ``ValueError`` naming what is wrong (a plane's shape
    against the size and sampling, a zero step); coefficients libjpeg cannot code (outside
    baseline JPEG's range) raise ``JPEGError``.
    """
    if not isinstance(image, DCTImage):
        raise TypeError(f"write_coefficients takes a DCTImage, not {type(image).__name__}")
    planes = []
    for name, plane in zip(("y", "cb", "cr"), image.components):
        plane = np.asarray(plane)
        if plane.dtype != np.int16:
            raise TypeError(f"{name}: coefficients must be int16, not {plane.dtype}")
        planes.append(np.ascontiguousarray(plane))
    tables = np.asarray(image.qt)
    if tables.ndim != 2 or tables.shape[0] < len(planes) or tables.shape[1] != 64:
        raise ValueError(f"qt must hold one 64-step table per component, not shape {tables.shape}")
    if tables.min() < 1 or tables.max() > 32767:
        raise ValueError(f"quantization steps are 1..32767, not {int(tables.min())}..{int(tables.max())}")
    data = _reader.write_coefficients(planes, np.ascontiguousarray(tables[: len(planes)], np.uint16), int(image.width),
                                      int(image.height), [tuple(s) for s in image.sampling[: len(planes)]],
                                      progressive, optimize)
    if file is not None:
        if hasattr(file, "write"):
            file.write(data)
        else:
            with open(file, "wb") as f:
                f.write(data)
    return data

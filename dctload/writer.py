"""Writing quantized DCT coefficients back to a standard JPEG: the inverse of
:func:`dctload.read_coefficients`, through libjpeg's ``jpeg_write_coefficients``
(``csrc/reader.c``), so that a dataset can be prepared without leaving the DCT domain."""

from __future__ import annotations

import os
from typing import BinaryIO

import dataclasses

import numpy as np

from . import _reader, coefficients
from .reader import DCTImage


def write_coefficients(image: DCTImage, file: str | os.PathLike | BinaryIO | None = None, *,
                       progressive: bool = False, optimize: bool = True) -> bytes:
    """The JPEG of ``image``'s quantized coefficients, tables and sampling, as bytes (also
    written to ``file``, a path or a binary file object, when given).

    Baseline, or libjpeg's simple progression (``progressive=True``); Huffman tables
    optimized for the image (``optimize=True``) or the standard ones (progressive files
    are always optimized). Reading a file and writing it back gives the same coefficients,
    tables and sampling, bit for bit. Bad arguments raise ``TypeError`` or ``ValueError``
    naming what is wrong: a plane's shape against the size and sampling, a zero step,
    sampling factors decoders refuse, a coefficient outside what 8-bit JPEG codes (a
    damaged file's garbage, say); libjpeg's own failures raise ``JPEGError``.
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


def requantize(image: DCTImage, tables) -> DCTImage:
    """``image`` with its coefficients rounded to new quantization ``tables``, as an
    encoder would round the same dequantized coefficients (:func:`dctload.coefficients.requantize_plane`).

    ``tables``: a quality 1..100 (IJG's standard tables scaled as ``jpeg_set_quality``
    scales them, baseline steps 1..255), or ``(luma, chroma)`` steps of 64 each in
    natural order (a JPEG-DL table learned by ``nets``, say: ``DCTRequantize.steps()[0]``;
    rounded to integers, at least 1), or one table per component. The image's own tables
    give it back unchanged.
    """
    n = len(image.components)
    if isinstance(tables, (int, np.integer)) and not isinstance(tables, bool):
        luma, chroma = coefficients.standard_tables(int(tables))
        new = [luma] + [chroma] * (n - 1)
    else:
        given = [np.asarray(getattr(t, "detach", lambda: t)(), dtype=np.float64).reshape(-1) for t in tables]
        if len(given) not in (2, n) or any(t.shape != (64,) for t in given):
            raise ValueError(f"tables: a quality, (luma, chroma) or {n} tables of 64 steps")
        new = given if len(given) == n else [given[0]] + [given[1]] * (n - 1)
        new = [np.clip(np.rint(t), 1, 32767) for t in new]
    new = [np.asarray(t, np.uint16) for t in new[:n]]
    planes = [coefficients.requantize_plane(plane, image.qt[c], new[c]) for c, plane in enumerate(image.components)]
    return dataclasses.replace(image, y=planes[0], cb=planes[1] if n > 1 else None, cr=planes[2] if n > 1 else None,
                               qt=np.stack(new), warnings=())

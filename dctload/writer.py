"""Writing quantized DCT coefficients back to a standard JPEG: the inverse of
:func:`dctload.read_coefficients`, through libjpeg's ``jpeg_write_coefficients``
(``csrc/reader.c``), so that a dataset can be prepared without leaving the DCT domain."""

from __future__ import annotations

import json
import os
from typing import BinaryIO

import dataclasses

import numpy as np

from . import _reader, coefficients
from .reader import DCTImage


#: The largest marker payload (a 16-bit length that counts itself).
MARKER_PAYLOAD = 65533
ICC_CHUNK = MARKER_PAYLOAD - 14  # "ICC_PROFILE\0", sequence number and count


def metadata_markers(exif: bytes | None = None, icc_profile: bytes | None = None) -> list[tuple[int, bytes]]:
    """APP1 (Exif) and APP2 (ICC profile, in numbered chunks) markers, as JPEG writers store them."""
    markers = []
    if exif:
        if len(exif) + 6 > MARKER_PAYLOAD:
            raise ValueError(f"an EXIF payload of {len(exif)} bytes does not fit one APP1 marker")
        markers.append((0xE1, b"Exif\0\0" + bytes(exif)))
    if icc_profile:
        chunks = [icc_profile[i: i + ICC_CHUNK] for i in range(0, len(icc_profile), ICC_CHUNK)]
        if len(chunks) > 255:
            raise ValueError(f"an ICC profile of {len(icc_profile)} bytes needs more than 255 APP2 markers")
        markers += [(0xE2, b"ICC_PROFILE\0" + bytes([i + 1, len(chunks)]) + bytes(chunk))
                    for i, chunk in enumerate(chunks)]
    return markers


def write_coefficients(image: DCTImage, file: str | os.PathLike | BinaryIO | None = None, *,
                       progressive: bool = False, optimize: bool = True, exif: bytes | None = None,
                       icc_profile: bytes | None = None) -> bytes:
    """The JPEG of ``image``'s quantized coefficients, tables and sampling, as bytes (also
    written to ``file``, a path or a binary file object, when given).

    Baseline, or libjpeg's simple progression (``progressive=True``); Huffman tables
    optimized for the image (``optimize=True``) or the standard ones (progressive files
    are always optimized). Reading a file and writing it back gives the same coefficients,
    tables and sampling, bit for bit. Bad arguments raise ``TypeError`` or ``ValueError``
    naming what is wrong: a plane's shape against the size and sampling, a zero step,
    sampling factors decoders refuse, a coefficient outside what 8-bit JPEG codes (a
    damaged file's garbage, say); libjpeg's own failures raise ``JPEGError``.

    ``exif`` (a TIFF payload, as ``DCTImage.exif`` holds it) and ``icc_profile`` are
    written as APP1 and APP2 markers, so that an image keeps its orientation and colours.
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
                                      progressive, optimize, metadata_markers(exif, icc_profile))
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


def save_tables(path: str | os.PathLike, luma, chroma) -> None:
    """Writes (luma, chroma) quantization steps (64 each, natural order; tensors or arrays,
    rounded to integers 1..32767) as the JSON that :func:`load_tables` and
    ``dctload prepare --tables`` read."""
    steps = [np.clip(np.rint(np.asarray(getattr(t, "detach", lambda: t)(), np.float64).reshape(-1)), 1, 32767)
             for t in (luma, chroma)]
    if any(t.shape != (64,) for t in steps):
        raise ValueError("luma and chroma must have 64 steps each")
    with open(path, "w") as f:
        json.dump({"luma": [int(x) for x in steps[0]], "chroma": [int(x) for x in steps[1]]}, f)


def load_tables(path: str | os.PathLike) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(luma, chroma) steps from a :func:`save_tables` JSON file; a ValueError naming the
    file if it holds anything else."""
    try:
        with open(path) as f:
            record = json.load(f)
        tables = tuple(tuple(int(x) for x in record[key]) for key in ("luma", "chroma"))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a tables file ({exc!r}); expected {{\"luma\": [64 steps], "
                         f"\"chroma\": [64 steps]}}") from None
    if any(len(t) != 64 or min(t) < 1 or max(t) > 32767 for t in tables):
        raise ValueError(f"{path}: luma and chroma must hold 64 steps of 1..32767 each")
    return tables

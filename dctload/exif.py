"""EXIF orientation (tag 0x0112) from an APP1 Exif payload: reported, never applied."""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
# TIFF field types that hold integers: BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG.
INTEGER_TYPES = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i"}


def orientation(tiff: bytes | None) -> int | None:
    """The orientation (1-8) in a TIFF-structured EXIF payload, or None if absent or malformed."""
    if not tiff or len(tiff) < 8:
        return None
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return None
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, ifd)
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(tiff):
            return None
        tag, kind, n = struct.unpack_from(order + "HHI", tiff, entry)
        if tag != ORIENTATION_TAG:
            continue
        fmt = INTEGER_TYPES.get(kind)
        if fmt is None or n < 1:
            return None
        # Writers disagree on the type (SHORT per the standard; LONG and SLONG occur),
        # but a single integer always fits in the entry's 4-byte value field.
        (value,) = struct.unpack_from(order + fmt, tiff, entry + 8)
        return value if 1 <= value <= 8 else None
    return None

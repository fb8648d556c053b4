"""Exceptions of the reader. Every failure to read a JPEG is a ``JPEGError``."""

from __future__ import annotations

import os


class JPEGError(ValueError):
    """A JPEG could not be read: libjpeg's message, the file, and a short code.

    ``code`` is machine-readable: ``"corrupt"`` (libjpeg gave up on the data),
    ``"strict"`` (a warning, raised because ``strict=True``),
    ``"too_many_scans"``, ``"no_memory"``, or one of the
    ``UnsupportedJPEGError`` codes.
    """

    def __init__(self, reason: str, source: str | os.PathLike | None = None, code: str = "corrupt"):
        self.reason = reason
        self.source = None if source is None else os.fspath(source)
        self.code = code
        super().__init__(f"{self.source}: {reason}" if self.source else reason)

    def __reduce__(self):
        # DataLoader workers pickle exceptions back to the main process.
        return type(self), (self.reason, self.source, self.code)


class UnsupportedJPEGError(JPEGError):
    """A well-formed input that has no 8-bit YCbCr DCT coefficients to give.

    Codes: ``"not_jpeg"`` (another file type), ``"empty"``, ``"lossless"``,
    ``"process"`` (a SOF type libjpeg cannot read), ``"precision"`` (12/16-bit),
    ``"colorspace"`` (RGB, CMYK or YCCK: see ``fallback="pixels"``),
    ``"too_large"`` (more than ``max_pixels``) and ``"geometry"`` (a layout the exact
    resampling cannot take, e.g. a chroma plane sampled finer than the luma).
    """


def without_frames(exc: BaseException) -> BaseException:
    """``exc`` with the tracebacks of it and its causes dropped: an error kept for later
    (a batch's failed input) must not keep the frames, and with them the batch, alive."""
    seen = set()
    link = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc

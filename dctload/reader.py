"""Reading quantized DCT coefficients from JPEG bytes (the C extension's Python face)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import itertools
import os
import threading
from typing import Callable, Iterable, Literal, Union

import numpy as np

from . import _reader, coefficients, exif
from .errors import JPEGError, UnsupportedJPEGError, without_frames

Source = Union[bytes, bytearray, memoryview, np.ndarray, str, os.PathLike]

#: Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 89_478_485


@dataclasses.dataclass(eq=False)
class DCTImage:
    """The quantized DCT coefficients of one JPEG, as stored in the file.

    ``y``, ``cb``, ``cr``: int16 arrays (h_blocks, w_blocks, 64) covering exactly the
    image's blocks, natural order (index ``8 * v + u``); ``cb``/``cr`` are None for
    grayscale. ``qt``: (n_components, 64) uint16, the table of each component.
    ``sampling``: the (h, v) factors of each component. ``from_pixels`` is True when the
    coefficients were computed from decoded pixels (``fallback="pixels"``): 4:4:4,
    quantization step 1, and ``colorspace`` names the file's original colour space.
    """

    y: np.ndarray = dataclasses.field(repr=False)
    cb: np.ndarray | None = dataclasses.field(repr=False)
    cr: np.ndarray | None = dataclasses.field(repr=False)
    qt: np.ndarray = dataclasses.field(repr=False)
    width: int
    height: int
    sampling: tuple[tuple[int, int], ...]
    colorspace: str
    progressive: bool
    warnings: tuple[str, ...] = ()
    exif: bytes | None = dataclasses.field(default=None, repr=False)
    source: str | None = None
    from_pixels: bool = False

    @property
    def components(self) -> tuple[np.ndarray, ...]:
        """The coefficient arrays present: (y,) or (y, cb, cr)."""
        return (self.y,) if self.cb is None else (self.y, self.cb, self.cr)

    @functools.cached_property
    def orientation(self) -> int | None:
        """The EXIF orientation tag (1-8) if the file has one. Reported, not applied."""
        return exif.orientation(self.exif)

    def to_torch(self):
        """The coefficient arrays as int16 torch tensors sharing this image's memory."""
        import torch

        return tuple(None if a is None else torch.from_numpy(a) for a in (self.y, self.cb, self.cr))

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, **fields) -> "DCTImage":
        """YCbCr 4:4:4 coefficients, quantization step 1, of (H, W, 3) RGB or (H, W) gray pixels."""
        rgb = np.asarray(rgb)
        if rgb.ndim == 2:
            (y,), cb, cr = coefficients.coefficients_from_pixels(rgb[..., None].astype(np.float64)), None, None
            tables = 1
        else:
            y, cb, cr = coefficients.coefficients_from_pixels(coefficients.rgb_to_ycbcr(rgb))
            tables = 3
        fields.setdefault("colorspace", "YCbCr" if tables == 3 else "gray")
        fields.setdefault("progressive", False)
        return cls(
            y, cb, cr, qt=np.ones((tables, 64), dtype=np.uint16), width=rgb.shape[1], height=rgb.shape[0],
            sampling=((1, 1),) * tables, from_pixels=True, **fields,
        )

    def dequantize(self, dtype=np.float32) -> tuple[np.ndarray | None, ...]:
        """Coefficients in JPEG units (q * Q), as (y, cb, cr) arrays of ``dtype``."""
        out = [coefficients.dequantize(a, t, dtype) for a, t in zip(self.components, self.qt)]
        return tuple(out) + (None,) * (3 - len(out))


def _as_buffer(src: Source) -> tuple[object, str | None]:
    """The bytes to decode and a name for error messages. Paths are read into memory."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        with open(name, "rb") as f:
            return f.read(), name
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8 or src.ndim != 1:
            raise TypeError(f"a numpy source must be a 1-D uint8 array, not {src.dtype} {src.shape}")
        return np.ascontiguousarray(src), None
    if isinstance(src, (bytes, bytearray, memoryview)):
        return src, None
    raise TypeError(f"cannot read JPEG data from {type(src).__name__}: give bytes, a uint8 array or a path")


def read_header(src: Source) -> dict:
    """Size, sampling, colour space, progressive/arithmetic coding and restart interval.

    Reads only the markers before the first scan: no entropy decoding.
    """
    data, name = _as_buffer(src)
    return _reader.read_header(data, name)


def read_coefficients(
    src: Source,
    *,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fallback: Literal["pixels"] | None = None,
    name: str | None = None,
) -> DCTImage:
    """Entropy-decodes a JPEG and returns its quantized DCT coefficients.

    ``strict``: raise on any libjpeg warning (corrupt data) instead of recording it.
    ``max_pixels``: refuse headers declaring more pixels, before allocating
    (None: no limit). ``fallback="pixels"``: for RGB, CMYK and YCCK files, which have
    no YCbCr coefficients, decode to pixels and compute them (``from_pixels=True``).
    ``name``: the file name to put in errors when ``src`` is in-memory bytes.
    """
    if fallback not in (None, "pixels"):
        raise ValueError(f'fallback must be None or "pixels", not {fallback!r}')
    data, path = _as_buffer(src)
    name = name or path
    limit = 0 if max_pixels is None else int(max_pixels)
    if max_pixels is not None and limit <= 0:
        raise ValueError("max_pixels must be positive or None")
    try:
        header, buffer, qt, exif_payload, warnings = _reader.read_coefficients(data, name, strict, limit)
    except UnsupportedJPEGError as exc:
        if fallback == "pixels" and exc.code == "colorspace":
            return _from_pixels(data, name, strict, limit)
        raise
    # Views into libjpeg's arrays, whose rows are padded to whole MCUs: strided, not copied.
    arrays = [
        np.ndarray((h_blocks, w_blocks, 64), np.int16, memory, strides=(row_stride, 128, 2))
        for (h_blocks, w_blocks), (memory, row_stride) in zip(header["blocks"], buffer)
    ]
    arrays += [None] * (3 - len(arrays))
    tables = np.frombuffer(qt, dtype=np.uint16).reshape(-1, 64).copy()
    for component, table in enumerate(tables):
        if not table.all():
            # libjpeg does not check; T.81 (B.2.4.1) forbids it, and the coefficients
            # it scales would all dequantize to 0: a silently wrong image.
            raise JPEGError(f"the quantization table of component {component} has a zero step", name)
    return DCTImage(
        *arrays,
        qt=tables,
        width=header["width"],
        height=header["height"],
        sampling=header["sampling"],
        colorspace=header["colorspace"],
        progressive=header["progressive"],
        warnings=tuple(warnings),
        exif=exif_payload,
        source=name,
    )


def _from_pixels(data, name: str | None, strict: bool, limit: int) -> DCTImage:
    """YCbCr 4:4:4 coefficients (step 1) of a file libjpeg can only give as pixels."""
    header, buffer, channels, exif_payload, warnings = _reader.decode_pixels(data, name, strict, limit)
    pixels = np.frombuffer(buffer, dtype=np.uint8).reshape(header["height"], header["width"], channels)
    rgb = coefficients.cmyk_to_rgb(pixels, inverted=header["adobe"]) if channels == 4 else pixels
    return DCTImage.from_rgb(
        rgb, colorspace=header["colorspace"], progressive=header["progressive"],
        warnings=tuple(warnings), exif=exif_payload, source=name,
    )


_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def default_num_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pool(num_threads: int) -> concurrent.futures.ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(num_threads)
        if pool is None:
            pool = _pools[num_threads] = concurrent.futures.ThreadPoolExecutor(
                num_threads, thread_name_prefix="dctload")
        return pool


def read_batch(
    srcs: Iterable[Source],
    *,
    num_threads: int | None = None,
    errors: Literal["raise", "return"] = "raise",
    transform: Callable[[DCTImage], object] | None = None,
    **options,
) -> list:
    """Reads many inputs on a thread pool; libjpeg runs with the GIL released.

    Results come in input order. ``errors="raise"`` raises the error of the first
    failing input (by position); ``errors="return"`` puts the exception object (a
    ``JPEGError``, or the ``OSError`` of a path that cannot be read) in that input's
    place instead, so one bad file costs only itself. ``transform`` runs on each
    image in the thread that read it, and its result takes the image's place
    (a crop, say: the full coefficients are freed at once). ``options`` go to
    :func:`read_coefficients`.
    """
    if errors not in ("raise", "return"):
        raise ValueError(f'errors must be "raise" or "return", not {errors!r}')
    srcs = list(srcs)
    num_threads = min(num_threads or default_num_threads(), len(srcs))
    read = functools.partial(_read_or_error, options, transform)
    if num_threads <= 1:
        results = [read(src) for src in srcs]
    else:
        results = [None] * len(srcs)
        # One task per thread, each taking the next input as it finishes one: balanced
        # whatever the file sizes, and cheaper than a future per image.
        next_index = itertools.count().__next__  # atomic under the GIL

        def work():
            while (i := next_index()) < len(srcs):
                results[i] = read(srcs[i])

        for task in [_pool(num_threads).submit(work) for _ in range(num_threads)]:
            task.result()
    if errors == "raise":
        for result in results:
            if isinstance(result, (JPEGError, OSError)):
                raise result
    return results


def _read_or_error(options: dict, transform, src: Source):
    try:
        image = read_coefficients(src, **options)
    except (JPEGError, OSError) as exc:
        return without_frames(exc)  # the frames would keep the batch alive until gc ran
    return image if transform is None else transform(image)

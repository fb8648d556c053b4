"""``DCTImageFolder``: torchvision's ``ImageFolder`` for DCT coefficients (and
``DCTFiles``, the same over a given list of ``(path, class index)`` samples).

An ImageNet training script swaps ``ImageFolder`` for ``DCTImageFolder`` and its model
for a DCT network; ``classes``, ``class_to_idx``, ``samples`` and ``targets`` mean the
same. :func:`dctload.loader` builds the whole DataLoader. Works with DataLoader workers (``persistent_workers``, ``pin_memory``) and
``DistributedSampler``; pass ``collate_fn=dctload.collate``. A DataLoader fetches whole
batches (``__getitems__``): with a standard recipe of :mod:`dctload.transforms` they are
read, cropped and resized in one C call (:mod:`dctload.fused`), with crop-aware decoding.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import secrets
import tempfile
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torchvision.datasets.folder import find_classes, make_dataset

from . import fused
from .batch import FilledBatch
from .packets import FilledPackets
from .errors import JPEGError
from .reader import DEFAULT_MAX_PIXELS, DCTImage, read_coefficients
from .transforms import functional as F

log = logging.getLogger("dctload")

#: What a JPEG file is called (case-insensitive), here and in every folder scan.
JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
OnError = Literal["raise", "fallback", "skip"]
ON_ERROR = ("raise", "fallback", "skip")


def list_jpegs(folder: str | os.PathLike) -> list[pathlib.Path]:
    """JPEG files under ``folder`` (recursively, sorted), by extension."""
    return sorted(p for p in pathlib.Path(folder).rglob("*") if p.suffix.lower() in JPEG_EXTENSIONS and p.is_file())


def scan(root: str | os.PathLike, is_valid_file: Callable[[str], bool] | None = None,
         allow_empty: bool = False) -> tuple[list[tuple[str, int]], list[str]]:
    """ImageFolder's ``(samples, classes)`` of the JPEG files under ``root/class_x/``."""
    classes, class_to_idx = find_classes(os.fspath(root))
    samples = make_dataset(os.fspath(root), class_to_idx, None if is_valid_file else JPEG_EXTENSIONS,
                           is_valid_file, allow_empty)
    return samples, classes


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f'on_error must be "raise", "fallback" or "skip", not {on_error!r}')
    return on_error


class DCTFiles(torch.utils.data.Dataset):
    """``(path, class index)`` samples -> ``(transform(DCTImage), class index)``:
    :class:`DCTImageFolder` without the folder scan (a file list, a flat folder).
    ``classes`` name the indices (default ``"0"``, ``"1"``...).

    ``on_error``: what an unreadable file does (a ``JPEGError`` or ``OSError``):
    ``"raise"`` stops; ``"fallback"`` decodes it with Pillow and computes 4:4:4
    coefficients from the pixels (PNGs named .JPEG, CMYK files; what Pillow cannot
    decode either is skipped); ``"skip"`` uses the next readable file in its place.
    Skipped files are never dropped silently: each is logged when met, written to a
    record shared by all worker processes (``skip_log``, a file), and listed by
    :meth:`skipped`; :meth:`log_skipped` writes one line per epoch. CMYK, YCCK and RGB
    JPEGs always take the exact pixel route (``DCTImage.from_pixels``), as ImageFolder
    converts them too. ``max_pixels``: as in :func:`dctload.read_coefficients`.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str | os.PathLike, int]],
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        on_error: OnError = "raise",
        skip_log: str | os.PathLike | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        strict: bool = False,
        num_threads: int | None = None,
        classes: Sequence[str] | None = None,
    ):
        self.samples = self.imgs = [(os.fspath(path), int(target)) for path, target in samples]
        self.targets = [t for _, t in self.samples]
        if classes is None:
            classes = [str(k) for k in range(max(self.targets, default=-1) + 1)]
        self.classes = list(classes)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        self.root = os.path.commonpath([os.path.dirname(p) or "." for p, _ in self.samples]) if self.samples else ""
        self.transform, self.target_transform = transform, target_transform
        self.on_error = check_on_error(on_error)
        self.max_pixels = max_pixels
        self.strict = strict
        self.num_threads = num_threads
        if skip_log is None:  # named now so that worker processes share it, created at the first record
            skip_log = os.path.join(tempfile.gettempdir(), f"dctload-skipped-{os.getpid()}-{secrets.token_hex(4)}.tsv")
        self.skip_log = os.fspath(skip_log)
        self._reported = 0

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, path: str) -> DCTImage:
        """The loader: coefficients of one file (pixels route for non-YCbCr colour spaces)."""
        return read_coefficients(path, fallback="pixels", max_pixels=self.max_pixels, strict=self.strict)

    def __getitem__(self, index: int):
        image, target = self._readable(index)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _readable(self, index: int, first: int = 0) -> tuple[DCTImage, int]:
        """The image at ``index``, or (``on_error="skip"``) at the next readable index.
        A file is recorded when its own slot fails, not again as a stand-in for
        another's: each bad file once per pass. ``first``: attempts already made."""
        for attempt in range(first, len(self.samples)):
            path, target = self.samples[(index + attempt) % len(self.samples)]
            try:
                image = self._load(path, own_slot=attempt == 0)
            except (JPEGError, OSError) as exc:
                if self.on_error == "raise":
                    raise
                if attempt == 0:
                    self._record(path, exc)
                continue
            return image, target
        raise RuntimeError(f"no readable file in {self.root}: see {self.skip_log}")

    def __getitems__(self, indices: list[int]) -> list:
        return self.load_batch(indices)

    def load_batch(self, indices: list[int], seeds: list[int] | None = None) -> list:
        """The samples at ``indices`` as one :class:`~dctload.batch.FilledBatch` (what a
        DataLoader's ``__getitems__`` gets). A standard recipe runs through the batch path
        (:mod:`dctload.fused`), a recipe ending in ``ToPacket`` through its packed form (a
        :class:`~dctload.packets.FilledPackets`, or per image where a file fails); any
        other transform runs per image. ``seeds``: seed torch's
        RNG with ``seeds[i]`` for sample i's draws (epoch-seeded loaders)."""
        plan = fused.plan(self.transform)
        if plan is not None:
            paths = [self.samples[i][0] for i in indices]
            targets = [self.samples[i][1] for i in indices]
            datas = [fused.read_file(path) for path in paths]
            views, errors = fused.draw(datas, paths, plan, seeds)
        threads = self.num_threads or (1 if fused.in_worker_process() else None)
        if plan is not None and plan.packets:  # the GPU path's packets, all in one call or per image
            packed, order, outcomes = fused.read_packed(datas, views, num_threads=threads, strict=self.strict,
                                                        max_pixels=self.max_pixels, names=paths,
                                                        shared=fused.in_worker_process())
            if packed is not None:
                for i in order:
                    if outcomes[i].warnings:
                        self._record_warnings(paths[i], outcomes[i].warnings)
                targets = [targets[i] for i in order]
                if self.target_transform is not None:
                    targets = [self.target_transform(t) for t in targets]
                return FilledPackets(packed, targets)
        if plan is None or plan.packets or all(view is None for view in views):  # per image
            with fused.seeded(seeds) as seed:
                samples = []
                for i, index in enumerate(indices):
                    seed(i)
                    samples.append(self[index])
            return samples
        y, cbcr, outcomes = fused.read_resampled(
            datas, views, num_threads=threads, strict=self.strict, max_pixels=self.max_pixels, names=paths,
            shared=fused.in_worker_process())
        for i, (index, view, error, outcome) in enumerate(zip(indices, views, errors, outcomes)):
            if error is None and outcome.error is None:
                if outcome.warnings:
                    self._record_warnings(paths[i], outcome.warnings)
                continue
            with fused.seeded(None if seeds is None else seeds[i:i + 1]) as seed:
                seed(0)
                (y[i], cbcr[i]), targets[i] = self._per_image(index, view, plan)
        y, cbcr = plan.apply_tail(y, cbcr)
        if self.target_transform is not None:
            targets = [self.target_transform(t) for t in targets]
        return FilledBatch((y, cbcr), targets)

    def _per_image(self, index: int, view, plan) -> tuple:
        """A batch slot the C call could not fill, read as ``__getitem__`` reads (the pixel
        route for files without YCbCr coefficients, keeping the draws already made when
        the image has the header's size), else ``on_error``'s answer."""
        path, target = self.samples[index]
        try:
            image = self._load(path)
            if view is None or (image.height, image.width) != (view.image.height, view.image.width):
                view = plan.draw(image)
            else:
                view = dataclasses.replace(view, image=image)
            return F.to_tensor(view), target
        except (JPEGError, OSError) as exc:  # unreadable, or a layout the resampling cannot take
            if self.on_error == "raise":
                raise
            self._record(path, exc)
        image, target = self._readable(index, first=1)
        return F.to_tensor(plan.draw(image)), target

    def _load(self, path: str, own_slot: bool = True) -> DCTImage:
        """The file's image, by ``on_error``'s route; its warnings are recorded when it is
        read for its own slot, not again as a stand-in for another's."""
        try:
            image = self.read(path)
            if image.warnings and own_slot:
                self._record_warnings(path, image.warnings)
            return image
        except (JPEGError, OSError) as exc:
            if self.on_error != "fallback" or isinstance(exc, FileNotFoundError):
                raise
            try:
                return decode_with_pillow(path, exc, self.max_pixels)
            except (JPEGError, OSError):
                raise exc from None

    def _record(self, path: str, exc: BaseException) -> None:
        reason = str(getattr(exc, "reason", None) or exc)
        log.warning("dctload: skipped %s: %s", path, reason)
        self._write_record(path, type(exc).__name__, reason)

    def _record_warnings(self, path: str, warnings) -> None:
        reason = "read with warnings: " + "; ".join(warnings)
        log.warning("dctload: %s was %s", path, reason)
        self._write_record(path, "warning", reason)

    def _write_record(self, path: str, kind: str, reason: str) -> None:
        reason = reason.replace("\t", " ").replace("\n", " ")
        # One short O_APPEND write per line: atomic across worker processes.
        with open(self.skip_log, "a") as f:
            f.write(f"{path}\t{kind}\t{reason}\n")

    def skipped(self) -> list[tuple[str, str, str]]:
        """(path, exception type or ``warning``, reason) of every skip and every file read
        with warnings so far, in all processes (once per epoch it happens in)."""
        try:
            with open(self.skip_log) as f:
                return [tuple(line.rstrip("\n").split("\t", 2)) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def log_skipped(self, epoch: int | None = None) -> list[tuple[str, str, str]]:
        """Logs one line: how many files were skipped since the last call (and where the
        record is); returns those entries."""
        entries = self.skipped()
        new, self._reported = entries[self._reported:], len(entries)
        when = "" if epoch is None else f"epoch {epoch}: "
        log.warning("dctload: %s%d file(s) skipped%s", when, len(new), f" (listed in {self.skip_log})" if new else "")
        return new


class DCTImageFolder(DCTFiles):
    """``root/class_x/xxx.jpg`` -> ``(transform(DCTImage), class index)``, scanned as
    torchvision's ``ImageFolder`` scans (``is_valid_file``, ``allow_empty``); the other
    options are :class:`DCTFiles`'."""

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None, is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False, **options):
        samples, classes = scan(root, is_valid_file, allow_empty)
        super().__init__(samples, transform, target_transform, classes=classes, **options)
        self.root = os.fspath(root)


def decode_with_pillow(path: str, cause: BaseException, max_pixels: int | None) -> DCTImage:
    """``on_error="fallback"``: Pillow decodes what libjpeg refused (``cause``), to exact
    4:4:4 coefficients; a JPEGError naming both decoders where Pillow cannot either."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if max_pixels is not None and im.width * im.height > max_pixels:
                raise cause
            rgb = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, Image.DecompressionBombError, ValueError, SyntaxError) as exc:
        raise JPEGError(f"neither libjpeg ({cause}) nor Pillow ({exc}) can decode it", path) from exc
    return DCTImage.from_rgb(rgb, warnings=(f"decoded by Pillow after: {cause}",), source=path)

"""Per-frequency normalization statistics: estimate them from a folder, save, load.

``dctload stats FOLDER [--out stats.json]`` writes the mean and standard deviation of
every luma and chroma channel of the batch contract under the validation recipe
(Resize(256), CenterCrop(224)); ``dctload.stats.load(path).normalize()`` is the
:class:`dctload.batch.Normalize` they give.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Iterable, Sequence

import logging

import numpy as np
import torch

from . import reader
from .batch import Normalize
from .errors import JPEGError
from .folder import ON_ERROR, check_on_error, decode_with_pillow, list_jpegs

log = logging.getLogger("dctload")


@dataclasses.dataclass
class NormalizationStats:
    """``mean``/``std``: (luma (64,), chroma (128,)) float64 arrays; ``count``: images;
    ``skipped``: ``(path, reason)`` of files left out (``on_error="skip"``)."""

    mean: tuple[np.ndarray, np.ndarray]
    std: tuple[np.ndarray, np.ndarray]
    count: int
    skipped: list = dataclasses.field(default_factory=list)

    def normalize(self) -> Normalize:
        """The :class:`dctload.batch.Normalize` of these statistics."""
        return Normalize(self.mean, self.std)

    def save(self, path) -> None:
        payload = {
            "count": self.count,
            "y_mean": self.mean[0].tolist(), "y_std": self.std[0].tolist(),
            "cbcr_mean": self.mean[1].tolist(), "cbcr_std": self.std[1].tolist(),
        }
        with open(path, "w") as f:
            json.dump(payload, f)


def load(path) -> NormalizationStats:
    with open(path) as f:
        payload = json.load(f)
    try:
        return NormalizationStats(
            mean=(np.array(payload["y_mean"]), np.array(payload["cbcr_mean"])),
            std=(np.array(payload["y_std"]), np.array(payload["cbcr_std"])),
            count=int(payload["count"]),
        )
    except KeyError as exc:
        raise ValueError(f"{path}: not a dctload statistics file (missing {exc})") from None


def estimate(
    files: Iterable[str | os.PathLike],
    transform=None,
    num_threads: int | None = None,
    chunk: int = 64,
    on_error: str = "raise",
) -> NormalizationStats:
    """Mean and std of every channel over all blocks of ``files`` after ``transform``
    (default: the validation recipe at 224, ``Recipe.val()``). ``on_error``: a file that
    cannot be read raises (``"raise"``), is decoded by Pillow (``"fallback"``, then
    skipped if Pillow cannot either), or is left out (``"skip"``); each file left out
    is logged and listed in the result's ``skipped``."""
    from .recipe import Recipe

    check_on_error(on_error)
    transform = transform or Recipe.val().dct_transform()
    files = [os.fspath(f) for f in files]
    if not files:
        raise ValueError("no files to estimate statistics from")
    sums = [np.zeros(64), np.zeros(128)]
    squares = [np.zeros(64), np.zeros(128)]
    blocks = [0, 0]
    skipped = []
    for i in range(0, len(files), chunk):
        names = files[i:i + chunk]
        results = reader.read_batch(names, num_threads=num_threads, transform=transform, fallback="pixels",
                                    errors="return")
        for name, sample in zip(names, results):
            if isinstance(sample, Exception):
                if on_error == "raise":
                    raise sample
                try:
                    if on_error != "fallback":
                        raise sample
                    sample = transform(decode_with_pillow(name, sample, reader.DEFAULT_MAX_PIXELS))
                except (JPEGError, OSError) as exc:
                    log.warning("dctload stats: skipped %s: %s", name, exc)
                    skipped.append((name, str(exc)))
                    continue
            for c, x in enumerate(sample):
                x = x.double().flatten(1)
                sums[c] += x.sum(1).numpy()
                squares[c] += (x * x).sum(1).numpy()
                blocks[c] += x.shape[1]
    if not blocks[0]:
        raise ValueError(f"none of the {len(files)} files could be read; skipped: {skipped[:3]}")
    mean = tuple(s / n for s, n in zip(sums, blocks))
    std = tuple(np.sqrt(np.maximum(q / n - m * m, 0.0)) for q, n, m in zip(squares, blocks, mean))
    # A channel that never varies (e.g. chroma of an all-grey set) keeps unit scale.
    std = tuple(np.where(s > 1e-6, s, 1.0) for s in std)
    return NormalizationStats(mean, std, len(files) - len(skipped), skipped)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dctload stats", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of JPEG files (searched recursively)")
    parser.add_argument("--out", default="dctload-stats.json", help="where to write the JSON (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many files (an even spread)")
    parser.add_argument("--threads", type=int, default=None, help="reader threads (default: every usable core)")
    parser.add_argument("--on-error", choices=ON_ERROR, default="raise",
                        help="a file that cannot be read: stop, decode it with Pillow, or leave it out (listed)")
    args = parser.parse_args(argv)
    files = list_jpegs(args.folder)
    if not files:
        parser.error(f"no JPEG files under {args.folder}")
    if args.limit and len(files) > args.limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, args.limit).astype(int)]
    torch.set_num_threads(1)
    result = estimate(files, num_threads=args.threads, on_error=args.on_error)
    result.save(args.out)
    left_out = f", {len(result.skipped)} left out (logged above)" if result.skipped else ""
    print(f"{args.out}: statistics of {result.count} files{left_out}; "
          f"luma DC mean {result.mean[0][0]:.1f} std {result.std[0][0]:.1f}")
    return 0


if __name__ == "__main__":
    main()

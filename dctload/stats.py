"""Per-frequency normalization statistics: estimate them from a folder, save, load.

``dctload stats FOLDER [--out stats.json]`` (or ``python -m dctload.stats``) writes the
mean and standard deviation of every luma and chroma channel of the batch contract
under the validation recipe (Resize(256), CenterCrop(224)), for ``transforms.Normalize``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Iterable, Sequence

import numpy as np
import torch

from . import datasets, reader


@dataclasses.dataclass
class NormalizationStats:
    """``mean``/``std``: (luma (64,), chroma (128,)) float64 arrays; ``count``: images."""

    mean: tuple[np.ndarray, np.ndarray]
    std: tuple[np.ndarray, np.ndarray]
    count: int

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
) -> NormalizationStats:
    """Mean and std of every channel over all blocks of ``files`` after ``transform``
    (default: Resize(256), CenterCrop(224), ToTensor). Unreadable files are reported,
    never silently skipped: the first error is raised."""
    from . import transforms as T

    transform = transform or T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    files = list(files)
    if not files:
        raise ValueError("no files to estimate statistics from")
    sums = [np.zeros(64), np.zeros(128)]
    squares = [np.zeros(64), np.zeros(128)]
    blocks = [0, 0]
    for i in range(0, len(files), chunk):
        for sample in reader.read_batch(files[i:i + chunk], num_threads=num_threads, transform=transform,
                                         fallback="pixels"):
            for c, x in enumerate(sample):
                x = x.double().flatten(1)
                sums[c] += x.sum(1).numpy()
                squares[c] += (x * x).sum(1).numpy()
                blocks[c] += x.shape[1]
    mean = tuple(s / n for s, n in zip(sums, blocks))
    std = tuple(np.sqrt(np.maximum(q / n - m * m, 0.0)) for q, n, m in zip(squares, blocks, mean))
    # A channel that never varies (e.g. chroma of an all-grey set) keeps unit scale.
    std = tuple(np.where(s > 1e-6, s, 1.0) for s in std)
    return NormalizationStats(mean, std, len(files))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dctload stats", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of JPEG files (searched recursively)")
    parser.add_argument("--out", default="dctload-stats.json", help="where to write the JSON (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many files (an even spread)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    files = datasets.list_jpegs(args.folder)
    if args.limit and len(files) > args.limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, args.limit).astype(int)]
    torch.set_num_threads(1)
    result = estimate(files, num_threads=args.threads)
    result.save(args.out)
    print(f"{args.out}: statistics of {result.count} files; luma DC mean {result.mean[0][0]:.1f} std {result.std[0][0]:.1f}")


if __name__ == "__main__":
    main()

"""Shared pieces of the benchmarks: interleaved timing, machine description, reports.

These machines are shared and noisy, so contestants are timed in interleaved rounds
(each round runs every contestant once, in a rotated order) and ratios are taken
within a round before the median over rounds: drift hits both sides of a ratio alike.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Callable

#: Where results go by default: outside the source tree, in the current directory.
RESULTS = pathlib.Path(os.environ.get("DCTLOAD_BENCH_RESULTS", "dctload-bench"))


def machine() -> dict:
    """CPU model, cores, OS and the library versions that the figures depend on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    versions = {}
    for package in ("dctload", "numpy", "torch", "torchvision", "pillow", "jpeglib", "nvidia-dali-cuda120"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    try:
        from dctload import _reader

        versions["libjpeg_api"] = _reader.LIBJPEG_VERSION
    except ImportError:  # model-only benchmarks run without the extension built
        versions["libjpeg_api"] = None
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gpu": gpu,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def interleaved(contestants: dict[str, Callable[[], float]], rounds: int, progress=print,
                warmup: bool = True) -> dict[str, list[float]]:
    """Runs every contestant once per round, rotating the order; returns seconds per round.

    A contestant returns its own measured seconds (so it can exclude set-up), or None
    to be timed from outside. ``warmup=False`` leaves out the untimed first pass, for
    contestants that warm up inside their own runs.
    """
    names = list(contestants)
    times = {name: [] for name in names}
    for name in names if warmup else ():  # warm-up: code paths, caches, allocator
        contestants[name]()
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            measured = contestants[name]()
            times[name].append(measured if measured is not None else time.perf_counter() - start)
        progress(f"round {r + 1}/{rounds} done")
    return times


def prefetch_depth(loader) -> int:
    """Batches ``loader`` may have ready before they are asked for: a DataLoader's (also
    the one inside a ``dctload.loader`` built on one) workers x prefetch_factor; DALI's
    CPU and GPU queues (the ``dali`` backends)."""
    import torch

    inner = getattr(loader, "dataloader", None) or loader
    if isinstance(inner, torch.utils.data.DataLoader):
        return inner.num_workers * (inner.prefetch_factor or 0)
    pipeline = getattr(loader, "pipeline", None)
    if pipeline is not None:
        return pipeline.cpu_queue_size + pipeline.gpu_queue_size
    return 0


#: Rounds of a worker pool that a steady-state clock spans: N workers that start together
#: deliver their batches in bursts of N, so a window of a few bursts is needed.
POOL_ROUNDS = 3


#: Batches each worker of the benchmarks' CPU loaders prepares ahead (DataLoader's prefetch_factor).
PREFETCH_FACTOR = 4


def worker_headroom(workers: int) -> int:
    """Batches a pass needs beyond its timed ones for :func:`steady_state`: the first
    batch and the largest backlog of the benchmarks' loaders (PREFETCH_FACTOR per worker,
    more than the GPU backends' and DALI's)."""
    return 1 + PREFETCH_FACTOR * max(workers, 1)


def steady_state(loader, steps: int, consume: Callable, device: str | None) -> Callable[[], float]:
    """A contestant: seconds per image over ``steps`` batches of a fresh pass of ``loader``
    through ``consume(inputs, targets)``, in steady state.

    The first batch goes through ``consume`` outside the clock (start-up: worker
    processes, DALI's pipeline, kernel choice, allocator), then the batches the loader may
    have prepared meanwhile (:func:`prefetch_depth`) are drawn and dropped, so that the
    clock sees the rate at which the loader makes batches, not its backlog.
    """
    import itertools

    import torch

    def run():
        stream = iter(loader)
        consume(*next(stream))
        for _ in itertools.islice(stream, prefetch_depth(loader)):
            pass
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = batches = 0
        for inputs, targets in itertools.islice(stream, steps):
            consume(inputs, targets)
            images, batches = images + targets.shape[0], batches + 1
        if device == "cuda":
            torch.cuda.synchronize()
        if batches < steps:  # a short pass would time part of the work against others' whole
            raise RuntimeError(f"a pass held {batches} of the {steps} timed batches; list more samples")
        return (time.perf_counter() - start) / images
    return run


def rate_figures(times: dict[str, list[float]]) -> dict[str, dict]:
    """Per contestant timed in seconds per image: images/s of its median round, and the rounds."""
    return {name: {"images_per_s": 1 / statistics.median(t), "seconds_per_image_per_round": t}
            for name, t in times.items()}


def median_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of slow/fast, each ratio within one round."""
    return statistics.median(s / f for s, f in zip(slow, fast))


def print_table(header: list[str], rows: list[list]) -> str:
    cells = [[str(c) for c in row] for row in [header] + rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    text = "\n".join(lines)
    print(text)
    return text


def write_json(name: str, payload: dict) -> pathlib.Path:
    """Writes ``payload`` to ``<name>.json``: under :data:`RESULTS` for a bare name, as
    given for a path (``--out bench/results/x`` updates the committed results)."""
    path = pathlib.Path(f"{name}.json")
    if len(path.parts) == 1:
        path = RESULTS / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def report_targets(times: dict[str, list[float]], targets) -> list[dict]:
    """Checks (label, numerator, denominator, bound, "<=" or ">=") ratios of round times."""
    results = []
    for label, num, den, bound, op in targets:
        if num not in times or den not in times:
            results.append({"target": label, "measured": None, "met": None})
            print(f"  SKIP  {label}: not measured")
            continue
        ratio = median_ratio(times[num], times[den])
        met = ratio <= bound if op == "<=" else ratio >= bound
        results.append({"target": label, "measured": ratio, "bound": bound, "met": met})
        print(f"  {'MET ' if met else 'MISS'}  {label}: {ratio:.2f}x")
    return results


def figures_table(times: dict[str, list[float]], n: int, base: str, what: str) -> tuple[dict, str]:
    """Per contestant: ms and images/s per image (median round) and time relative to ``base``."""
    rows, figures = [], {}
    for name, seconds in times.items():
        ms = statistics.median(seconds) / n * 1e3
        ratio = median_ratio(seconds, times[base])
        figures[name] = {"ms_per_image": ms, "images_per_s": 1e3 / ms, "time_vs_base": ratio,
                         "seconds_per_round": seconds}
        rows.append([name, f"{ms:.3f}", f"{1e3 / ms:.0f}", f"{ratio:.2f}x"])
    print()
    return figures, print_table([what, "ms/image", "images/s", f"time vs {base}"], rows)


def parse_data_arguments(description: str, name: str, argv=None):
    """The folder/--rounds/--limit/--quick/--out arguments every data benchmark takes."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folder", nargs="?", help="folder of JPEGs (default: the built-in default data set)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="use at most this many files")
    parser.add_argument("--quick", action="store_true", help="2 rounds over at most 100 files")
    parser.add_argument("--out", help=f"result file, without .json (default: dctload-bench/{name}-<folder>)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.limit = 2, args.limit or 100
    return args


def labelled_samples(files, images: int, repeat: int = 1) -> list[tuple[str, int]]:
    """``(path, label)`` samples of ``files`` (labels cycling over 1000 classes), the list
    repeated ``repeat`` times, or more until it holds at least ``images`` samples."""
    repeat = max(repeat, -(-images // len(files)))
    return [(str(f), k % 1000) for k, f in enumerate(files)] * repeat


def folder_label(folder) -> str:
    """How results name a data folder without this machine's paths: the default data set
    by its name, ``../shared/data`` by its place beside the repository, others as given."""
    from dctload import synthetic

    folder = pathlib.Path(folder).resolve()
    if folder.is_relative_to(synthetic.cache_dir().resolve()):
        return f"default data set ({folder.name})"
    parts = folder.parts
    for i in range(len(parts) - 1):
        if parts[i:i + 2] == ("shared", "data"):
            return str(pathlib.Path("..", *parts[i:]))
    return str(folder)


def readable_files(args, **read_options) -> tuple[pathlib.Path, list[pathlib.Path], list[str]]:
    """(folder, the files dctload reads with ``read_options``, "name: reason" of the others)."""
    import dctload
    from dctload import synthetic
    from dctload.folder import list_jpegs

    folder = pathlib.Path(args.folder) if args.folder else synthetic.default_dataset()
    candidates = list_jpegs(folder)
    if args.limit:
        candidates = candidates[: args.limit]
    files, refused = [], []
    for path, result in zip(candidates, dctload.read_batch(candidates, errors="return", **read_options)):
        if isinstance(result, dctload.JPEGError):
            refused.append(f"{path.name}: {result.reason}")
        else:
            files.append(path)
    if not files:
        raise SystemExit(f"no readable JPEG in {folder} ({len(refused)} refused: {'; '.join(refused[:3])})")
    return folder, files, refused

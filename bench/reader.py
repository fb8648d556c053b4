"""Reader benchmark: dctload against the libjpeg floor and RGB decoders, side by side.

    python -m bench.reader [FOLDER] [--rounds N] [--limit N] [--quick]

FOLDER defaults to the built-in default data set (dctload.synthetic). Every contestant
decodes the same files held in memory (jpeglib needs paths: it reads the files), one
thread unless named otherwise; each decodes one image at a time and drops it (the
2-thread reader: batches of 32 through read_batch, each image dropped in its thread),
after one untimed warm-up pass. "batch kept" holds each batch of 32 until the batch is
done, which costs page faults under glibc's default malloc settings. Prints a table with
ratios and writes dctload-bench/reader-<folder name>.json. Targets (issue 2): dctload
within 1.10x of the
floor, at least 1.3x faster than torchvision.io.decode_jpeg, at least 3x faster than
jpeglib, and 2 threads at least 1.8x one thread.
"""

from __future__ import annotations

import io
import os
import pathlib
import shutil
import subprocess
import sys

if __package__ in (None, ""):  # run as a file (python bench/reader.py): import the bench package beside it
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

import dctload  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
FLOOR_SOURCE = HERE / "floor.c"
BATCH = 32  # images a batch for the 2-thread reader
TARGETS = (  # (name, numerator, denominator, bound, comparison)
    ("dctload within 1.10x of the floor", "dctload (1 thread)", "libjpeg floor (C)", 1.10, "<="),
    ("dctload >= 1.3x faster than decode_jpeg", "torchvision decode_jpeg", "dctload (1 thread)", 1.3, ">="),
    ("dctload >= 3x faster than jpeglib", "jpeglib read_dct", "dctload (1 thread)", 3.0, ">="),
    ("2 threads >= 1.8x one thread", "dctload (1 thread)", "dctload (2 threads)", 1.8, ">="),
)
# What the hardware allows the thread target: libjpeg in C, 2 processes against 1.
CEILING = ("libjpeg floor (C)", "libjpeg floor (C, 2 processes)")


def build_floor() -> pathlib.Path | None:
    """Compiles bench/floor.c (cached beside the default data set); None when no C
    compiler is at hand."""
    from dctload.synthetic import cache_dir

    binary = cache_dir() / "bench" / "floor"
    if binary.exists() and binary.stat().st_mtime >= FLOOR_SOURCE.stat().st_mtime:
        return binary
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-O2", "-o", str(binary), str(FLOOR_SOURCE), "-ljpeg"], check=True)
    return binary


def contestants(files: list[pathlib.Path], datas: list[bytes]) -> dict:
    """name -> callable timing one pass over all files (returns seconds or None)."""
    import jpeglib
    import torch
    import torchvision.io
    from PIL import Image

    torch.set_num_threads(1)
    tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
    batches = [datas[i:i + BATCH] for i in range(0, len(datas), BATCH)]

    def drop(image):  # in the reading thread, as a per-image transform would
        return None

    # Each decodes one image (or one batch) at a time and drops it, as a loader does.
    def each(decode, items):
        def one_pass():
            for item in items:
                decode(item)
        return one_pass

    out = {
        "dctload (1 thread)": each(dctload.read_coefficients, datas),
        "dctload (2 threads)": each(lambda b: dctload.read_batch(b, num_threads=2, transform=drop), batches),
        "dctload (2 threads, batch kept)": each(lambda b: dctload.read_batch(b, num_threads=2), batches),
        "torchvision decode_jpeg": each(torchvision.io.decode_jpeg, tensors),
        "Pillow decode to RGB": each(lambda d: Image.open(io.BytesIO(d)).convert("RGB"), datas),
        "jpeglib read_dct": each(lambda f: jpeglib.read_dct(str(f)).load(), files),
    }
    floor = build_floor()
    if floor is not None:
        def start_floor(share):
            return subprocess.Popen([str(floor), "3", *map(str, share)], stdout=subprocess.PIPE, text=True)

        def ms_per_image(process):
            out, _ = process.communicate()
            ms, failures = out.split()
            assert process.returncode == 0 and int(failures) == 0, "the floor program failed on a file dctload read"
            return float(ms)

        def run_floor():
            return ms_per_image(start_floor(files)) / 1e3 * len(files)

        def run_floor_pair():
            # Two processes at once, each over half the files: what 2 cores give libjpeg
            # itself, with no Python and nothing shared but the hardware.
            processes = [start_floor(files[i::2]) for i in range(2)]
            rates = [1 / ms_per_image(p) for p in processes]
            return len(files) / sum(rates) / 1e3

        out = {"libjpeg floor (C)": run_floor, "libjpeg floor (C, 2 processes)": run_floor_pair, **out}
    return out


def main(argv=None) -> int:
    args = common.parse_data_arguments(__doc__.split("\n\n")[0], "reader", argv)
    folder, files, refused = common.readable_files(args)
    datas = [path.read_bytes() for path in files]
    if not files:
        print(f"no readable JPEG under {folder}", file=sys.stderr)
        return 1
    print(f"{len(files)} files from {folder} ({len(refused)} refused by dctload, left out), {args.rounds} rounds")

    times = common.interleaved(contestants(files, datas), args.rounds)
    n = len(files)
    figures, table = common.figures_table(times, n, "dctload (1 thread)", "reader")
    print()
    results = common.report_targets(times, TARGETS)

    ceiling = None
    if all(name in times for name in CEILING):
        ceiling = common.median_ratio(times[CEILING[0]], times[CEILING[1]])
        print(f"        (2 libjpeg processes in C reach {ceiling:.2f}x one on this machine: "
              "the most 2 cores give this work here)")

    name = args.out or f"reader-{folder.name}"
    path = common.write_json(name, {
        "benchmark": "reader", "folder": common.folder_label(folder), "files": n, "refused": refused,
        "rounds": args.rounds, "machine": common.machine(), "figures": figures,
        "targets": results, "two_core_ceiling_in_c": ceiling, "table": table,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

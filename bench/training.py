"""End-to-end training benchmark: loader + forward + backward + optimizer step, DCT against RGB.

    python -m bench.training [FOLDER] [--device cpu|cuda] [--rounds N] [--steps N] [--quick]

late_concat_rfa_thinner on DCT input against resnet50 on RGB input (1000 classes, 224
px, SGD with momentum, channels_last; bf16 autocast on the GPU), each with every loader
it can take, side by side in interleaved rounds, every loader from one
``dctload.Recipe``: on the CPU, ``dctload.loader``'s ``cpu`` backend (DCT and RGB
output) loading in the step's process and with one worker; on the GPU, also every GPU
backend and DALI's RGB pipeline ('dali' and DALI RGB also with nvJPEG's hardware
decoder taking every image, ``bench.loaders``). The ratio compares each model with its own best loader.
Steps are timed in steady state (``common.steady_state``: start-up and the loader's
backlog outside the clock; on the GPU, enough steps to span three bursts of the worker
pool). Target (issue 7): Thinner on DCT at least 1.5x resnet50 on RGB in training
images/s, GPU and CPU each reported. Writes dctload-bench/training-<device>.json.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

if __package__ in (None, ""):  # run as a file (python bench/training.py): import the bench package beside it
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench import loaders as loader_bench  # noqa: E402

import torch  # noqa: E402

import nets  # noqa: E402

DCT_MODEL, RGB_MODEL = "late_concat_rfa_thinner", "resnet50"
TARGET_RATIO = 1.5


def step_function(name: str, device: str):
    """One SGD step of ``name`` on a batch; returns the loss (not synchronized)."""
    model = nets.create_model(name, num_classes=1000).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    criterion = torch.nn.CrossEntropyLoss()

    def step(inputs, targets):
        inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        inputs = [x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last) for x in inputs]
        targets = targets.to(device, non_blocking=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = criterion(model(*inputs).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss
    return step


def worker_label(workers: int) -> str:
    return "in-process" if workers == 0 else f"{workers} CPU worker{'s' * (workers > 1)}"


def contestants(samples, device: str, batch: int, cpu_workers: list[int], gpu_workers: int, steps: int) -> dict:
    dct_step, rgb_step = step_function(DCT_MODEL, device), step_function(RGB_MODEL, device)
    out = {}
    for workers in cpu_workers:
        out[f"{DCT_MODEL} + dctload ({worker_label(workers)})"] = common.steady_state(
            loader_bench.cpu_loader(samples, True, workers, batch), steps, dct_step, device)
        out[f"{RGB_MODEL} + decode_jpeg/v2 ({worker_label(workers)})"] = common.steady_state(
            loader_bench.cpu_loader(samples, False, workers, batch), steps, rgb_step, device)
    if device == "cuda":
        for name, loader in loader_bench.gpu_loaders(samples, batch, gpu_workers).items():
            if name.endswith("(rgb)"):
                label = name.replace("dali", "DALI RGB", 1).replace(" (rgb)", "")
                out[f"{RGB_MODEL} + {label}"] = common.steady_state(loader, steps, rgb_step, device)
            else:
                out[f"{DCT_MODEL} + {name.replace(' (dct)', '')}"] = common.steady_state(loader, steps, dct_step, device)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="folder of JPEGs (default: the built-in default data set)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=0,
                        help="timed training steps per round (default: 4 CPU; GPU: 20, or 3 per loader worker if more)")
    parser.add_argument("--batch", type=int, default=0, help="batch size (default: 16 CPU, 256 GPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers (default on the CPU: both 0, loading in the step's process, and 1, "
                             "or 0 with --quick; on the GPU: cores - 2)")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 2 CPU steps of 8 images (loading in-process), or 8 GPU steps")
    parser.add_argument("--out", help="result file, without .json (default: under dctload-bench/)")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    if args.quick:
        args.rounds, args.steps = 1, args.steps or (8 if cuda else 2)
    batch = args.batch or (256 if cuda else 8 if args.quick else 16)
    cores = common.machine()["cores_available"]
    if args.workers is not None:
        cpu_workers = [args.workers]
    elif cuda:
        cpu_workers = [max(1, cores - 2)]
    else:
        # The step's threads take every core, so a worker process competes with them more
        # than it overlaps; each model gets whichever of 0 and 1 worker is faster.
        cpu_workers = [0] if args.quick else [0, 1]
    workers = max(cpu_workers)  # the largest pool: sizes the GPU steps and the loaders' backlog
    steps = args.steps or (max(20, common.POOL_ROUNDS * workers) if cuda else 4)
    folder, files, refused = common.readable_files(args, fallback="pixels")
    samples = common.labelled_samples(files, (steps + common.worker_headroom(workers)) * batch)
    if cuda:
        torch.backends.cudnn.benchmark = True
    print(f"{len(files)} files from {folder}; {args.device}, batch {batch}, {steps} steps per round, "
          f"loader workers {' and '.join(map(str, cpu_workers))}, {args.rounds} rounds")
    times = common.interleaved(contestants(samples, args.device, batch, cpu_workers, workers, steps), args.rounds,
                               warmup=False)
    figures = common.rate_figures(times)
    best = {model: max((n for n in times if n.startswith(model)), key=lambda n: figures[n]["images_per_s"])
            for model in (DCT_MODEL, RGB_MODEL)}
    rows = [[name, f"{f['images_per_s']:.1f}", f"{common.median_ratio(times[best[RGB_MODEL]], times[name]):.2f}x"]
            for name, f in figures.items()]
    print()
    table = common.print_table(["model + loader", "train images/s", f"vs best {RGB_MODEL}"], rows)
    print()
    label = f"{DCT_MODEL} on DCT >= {TARGET_RATIO}x {RGB_MODEL} on RGB ({args.device}, best loaders)"
    results = common.report_targets(times, [(label, best[RGB_MODEL], best[DCT_MODEL], TARGET_RATIO, ">=")])
    name = args.out or f"training-{args.device}"
    path = common.write_json(name, {
        "benchmark": "training", "device": args.device, "folder": common.folder_label(folder), "files": len(files),
        "refused": refused, "batch": batch, "steps": steps, "cpu_workers": cpu_workers,
        **({"gpu_workers": workers} if cuda else {}), "rounds": args.rounds,
        "machine": common.machine(), "figures": figures, "best": best, "targets": results, "table": table,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

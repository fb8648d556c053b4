"""Model benchmark: parameters, GFLOPs and forward throughput of every nets/ model.

    python -m bench.models [--device cpu|cuda|all] [--rounds N] [--models a,b] [--quick]

CPU: inference mode, channels_last, batch 16, float32, all torch threads. GPU (where
available): bf16 autocast, channels_last, batch 256. DCT models get the dctload batch
contract for a 224x224 image, resnet50 a 3x224x224 image. Rounds interleave the models;
ratios to resnet50 are taken within a round. Writes dctload-bench/models-<device>.json.
Target (issue 4): late_concat_rfa_thinner at least 1.77x resnet50's forward throughput
on the GPU (the paper's headline), the CPU ratio reported beside it.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file (python bench/models.py): import the bench package beside it
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import nets  # noqa: E402

TARGET = ("late_concat_rfa_thinner >= 1.77x resnet50 (GPU)", "resnet50", "late_concat_rfa_thinner", 1.77, ">=")


def inputs(name: str, batch: int, device, memory_format=torch.channels_last):
    if nets.is_dct_model(name):
        shapes = [(batch, 64, 28, 28), (batch, 128, 14, 14)]
    else:
        shapes = [(batch, 3, 224, 224)]
    return [torch.randn(s, device=device).contiguous(memory_format=memory_format) for s in shapes]


def gflops(name: str) -> float:
    model = nets.create_model(name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs(name, 1, "cpu"))
    return counter.get_total_flops() / 1e9


def contestants(device: str, batch: int, iterations: int, names: list[str]) -> dict:
    out = {}
    for name in names:
        model = nets.create_model(name).eval().to(device, memory_format=torch.channels_last)
        args = inputs(name, batch, device)

        def run(model=model, args=args):
            with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                if device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(iterations):
                    model(*args)
                if device == "cuda":
                    torch.cuda.synchronize()
                return (time.perf_counter() - start) / (iterations * batch)  # seconds per image
        out[name] = run
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="", help="comma-separated models (default: all; --quick: the two "
                        "of the target)")
    parser.add_argument("--quick", action="store_true", help="1 round, fewer iterations, the target's two models")
    parser.add_argument("--out", help="result file, without .json (one --device only; default dctload-bench/models-<device>)")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("no CUDA device", file=sys.stderr)
            return 1
        devices.remove("cuda")
    if args.quick:
        args.rounds = 1
    names = [n for n in args.models.split(",") if n] or ([TARGET[2], TARGET[1]] if args.quick else nets.list_models())
    unknown = sorted(set(names) - set(nets.list_models()))
    if unknown or "resnet50" not in names:
        parser.error(f"unknown models {unknown}" if unknown else "--models must include resnet50 (the baseline)")
    torch.backends.cudnn.benchmark = True
    flops = {name: gflops(name) for name in names}
    params = {name: sum(p.numel() for p in nets.create_model(name).parameters()) for name in names}
    for device in devices:
        batch, iterations = (256, 10 if args.quick else 30) if device == "cuda" else (16, 1 if args.quick else 3)
        print(f"\n{device}: batch {batch}, {iterations} batches per round, {args.rounds} rounds")
        times = common.interleaved(contestants(device, batch, iterations, names), args.rounds)
        rows, figures = [], {}
        for name, seconds in times.items():
            rate = 1.0 / common.statistics.median(seconds)
            speedup = common.median_ratio(times["resnet50"], seconds)
            figures[name] = {"params": params[name], "gflops": flops[name], "images_per_s": rate,
                             "speedup_vs_resnet50": speedup, "seconds_per_image_per_round": seconds}
            rows.append([name, f"{params[name] / 1e6:.1f}M", f"{flops[name]:.2f}", f"{rate:.1f}", f"{speedup:.2f}x"])
        print()
        table = common.print_table(["model", "params", "GFLOPs", "images/s", "vs resnet50"], rows)
        print()
        label, num, den, bound, op = TARGET
        results = common.report_targets(times, [(label if device == "cuda" else label.replace("GPU", "CPU, reported"),
                                                 num, den, bound, op)])
        if device == "cpu":
            results[0]["met"] = None  # the target is the GPU's; the CPU ratio is reported
        path = common.write_json(args.out or f"models-{device}", {
            "benchmark": "models", "device": device, "batch": batch, "rounds": args.rounds,
            "machine": common.machine(), "figures": figures, "targets": results, "table": table,
        })
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

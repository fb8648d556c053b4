"""``dctload bench`` / ``python -m bench``: one report of DCT against RGB throughput.

Runs the benchmarks of ``bench/`` side by side on one data set (the built-in default, or
a folder), each in its own process: the reader, the per-core pipelines, the DataLoader
and GPU loaders with worker scaling, model forward passes, and end-to-end training steps
(``late_concat_rfa_thinner`` on DCT against ``resnet50`` on RGB, each with its best
loader) on the CPU and, where CUDA is present, on the GPU, and prepared data sets
(``dctload prepare`` against Pillow, and loading files prepared the way FFCV's recipe
does, at 512 and 256 px maximum side). Prints one table of images/s
per stage with ratios, and writes ``report.json`` (the machine and every figure),
``stages.png`` and ``workers.png`` to ``dctload-bench/report[-quick]/`` in the current
directory (``--out``; never the source tree unless asked), each section's own JSON under
its ``sections/``. Installed with dctload (``pip install .``), it runs from any directory.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

from bench import common

#: Where the bench package is importable from, for the sections' processes.
PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]

#: (stage, section, DCT contestant, RGB contestant); ratios are DCT images/s over RGB's.
STAGES = (
    ("decode, 1 thread", "reader", "dctload (1 thread)", "torchvision decode_jpeg"),
    ("train recipe, 1 core", "pipeline", "train: dctload batch", "train: decode_jpeg + v2"),
    ("val recipe, 1 core", "pipeline", "val: dctload batch", "val: decode_jpeg + v2"),
    ("val recipe vs Pillow, 1 core", "pipeline", "val: dctload batch", "val: Pillow + transforms"),
    ("train loader, all workers", "loaders", "dct", "rgb"),
    ("forward, CPU", "models-cpu", "late_concat_rfa_thinner", "resnet50"),
    ("forward, GPU", "models-cuda", "late_concat_rfa_thinner", "resnet50"),
    ("GPU loader (DALI)", "loaders-gpu", "dali (dct)", "dali (rgb)"),
    ("training step, CPU", "training-cpu", "late_concat_rfa_thinner", "resnet50"),
    ("training step, GPU", "training-cuda", "late_concat_rfa_thinner", "resnet50"),
    ("prepare a data set, 1 core", "prepare", "dctload prepare", "Pillow: decode, resize, encode"),
    ("train recipe on files prepared to 512, 1 core", "prepare", "train DCT: dctload --max-side 512",
     "train RGB: Pillow --max-side 512"),
    ("train recipe on files prepared to 256, 1 core", "prepare", "train DCT: dctload --max-side 256",
     "train RGB: Pillow --max-side 256"),
)


def run(script: str, *arguments: str) -> None:
    module = f"bench.{script.removesuffix('.py')}"
    command = [sys.executable, "-m", module, *arguments]
    print(f"\n$ python -m {' '.join(command[2:])}", flush=True)
    start = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
    code = subprocess.run(command, env={**os.environ, "PYTHONPATH": path}).returncode
    if code:
        raise SystemExit(f"dctload bench: {script} failed (exit status {code}); see its output above")
    print(f"({time.perf_counter() - start:.0f} s)", flush=True)


def load(name: str) -> dict | None:
    path = pathlib.Path(f"{name}.json")
    return json.loads(path.read_text()) if path.exists() else None


def stage_figures(sections: dict) -> list[dict]:
    """images/s of DCT and RGB per stage, from the sections' JSON."""
    rows = []
    for stage, section, dct, rgb in STAGES:
        data = sections.get(section)
        if data is None:
            continue
        figures = data.get("gpu", {}).get("figures", {}) if section == "loaders-gpu" else data["figures"]
        if section == "loaders":
            workers = max(int(w) for w in data["worker_scaling"]["dct"])
            stage = f"train loader, {workers} workers"
            dct, rgb = f"dct, {workers} workers", f"rgb, {workers} workers"
        elif section.startswith("training"):
            dct, rgb = data["best"][dct], data["best"][rgb]
        if dct not in figures or rgb not in figures:
            continue
        row = {"stage": stage, "dct_images_per_s": figures[dct]["images_per_s"],
               "rgb_images_per_s": figures[rgb]["images_per_s"], "ratio": _ratio(figures[dct], figures[rgb])}
        if section.startswith("training"):
            row["best_loaders"] = f"{dct.split(' + ', 1)[1]} / {rgb.split(' + ', 1)[1]}"
        rows.append(row)
    return rows


def _ratio(dct: dict, rgb: dict) -> float:
    """DCT's speed over RGB's: the median of the within-round ratios where the rounds'
    times are recorded (as the targets take it: rounds share the machine's noise), else
    the ratio of images/s."""
    for key in ("seconds_per_image_per_round", "seconds_per_round"):
        if key in dct and key in rgb and len(dct[key]) == len(rgb[key]):
            return common.median_ratio(rgb[key], dct[key])
    return dct["images_per_s"] / rgb["images_per_s"]


def plot(rows: list[dict], sections: dict, out: pathlib.Path, machine: str) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(rows) + 2))
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["dct_images_per_s"] for r in rows], 0.4, label="DCT (dctload)")
    ax.barh([y - 0.2 for y in ys], [r["rgb_images_per_s"] for r in rows], 0.4, label="RGB (torchvision / DALI)")
    for y, r in zip(ys, rows):
        ax.text(max(r["dct_images_per_s"], r["rgb_images_per_s"]) * 1.1, y, f"{r['ratio']:.2f}x", va="center")
    ax.set_yticks(list(ys), [r["stage"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(right=8 * max(max(r["dct_images_per_s"], r["rgb_images_per_s"]) for r in rows))
    ax.set_xlabel("images/s (log scale); labels: DCT / RGB")
    ax.set_title(f"DCT vs RGB per stage\n{machine}", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    fig.tight_layout()
    paths.append(out / "stages.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    loaders = sections.get("loaders")
    if loaders:
        fig, ax = plt.subplots(figsize=(6, 4))
        for kind, label in (("dct", "DCT: DCTImageFolder"), ("rgb", "RGB: decode_jpeg + v2")):
            scaling = {int(w): v for w, v in loaders["worker_scaling"][kind].items()}
            ax.plot(sorted(scaling), [scaling[w] for w in sorted(scaling)], marker="o", label=label)
        ax.set_xlabel("DataLoader workers")
        ax.set_ylabel("train-recipe images/s")
        ax.set_title(f"Loader scaling: {machine}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        paths.append(out / "workers.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dctload bench", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("folder", nargs="?", help="folder of JPEGs (default: the built-in default data set)")
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes: fewer files, rounds and steps")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out: "
                        "reader,pipeline,loaders,models,training,prepare")
    parser.add_argument("--reuse", action="store_true", help="report skipped sections from their last results "
                        "(a run split over several calls)")
    parser.add_argument("--out", default=None, help="report folder (default: dctload-bench/report[-quick] in the "
                        "current directory; bench/results/report updates the committed results)")
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    skip = {s for s in args.skip.split(",") if s}
    data = [args.folder] if args.folder else []
    quick = ["--quick"] if args.quick else []
    tag = "-quick" if args.quick else ""
    out = pathlib.Path(args.out) if args.out else common.RESULTS / f"report{tag}"
    # each section's JSON goes to <out>/sections/<section>.json
    names = {section: str((out / "sections" / section).resolve())
             for section in ("reader", "pipeline", "loaders", "prepare")}
    devices = ("cpu", "cuda") if cuda else ("cpu",)
    for device in devices:
        for section in ("models", "training"):
            names[f"{section}-{device}"] = str((out / "sections" / f"{section}-{device}").resolve())
    if "reader" not in skip:
        run("reader.py", *data, *quick, "--out", names["reader"])
    if "pipeline" not in skip:
        run("pipeline.py", *data, *quick, "--out", names["pipeline"])
    if "loaders" not in skip:
        run("loaders.py", *data, *quick, "--out", names["loaders"], *(["--repeat", "4"] if cuda else []))
    if cuda:  # the GPU part of the loaders' results, under the GPU's name
        names["loaders-gpu"] = f"{names['loaders']}-{torch.cuda.get_device_name(0).replace(' ', '-').lower()}"
        names["loaders"] = names["loaders-gpu"]
    for device in devices:
        if "models" not in skip:
            run("models.py", "--device", device, *quick, "--out", names[f"models-{device}"])
        if "training" not in skip:
            run("training.py", *data, "--device", device, *quick, "--out", names[f"training-{device}"])
    if "prepare" not in skip:
        run("prepare.py", *data, *quick, "--out", names["prepare"])
    if not args.reuse:
        names = {k: v for k, v in names.items() if k.split("-")[0] not in skip}

    sections = {section: load(name) for section, name in names.items()}
    sections = {k: v for k, v in sections.items() if v is not None}
    machine = common.machine()
    described = f"{machine['cpu']}, {machine['cores_available']} cores" + (f", {machine['gpu']}" if machine["gpu"] else "")
    rows = stage_figures(sections)
    print(f"\n== dctload bench: {described} ==\n")
    table = common.print_table(["stage", "DCT images/s", "RGB images/s", "DCT / RGB"],
                               [[r["stage"] + (f" ({r['best_loaders']})" if "best_loaders" in r else ""),
                                 f"{r['dct_images_per_s']:.1f}", f"{r['rgb_images_per_s']:.1f}",
                                 f"{r['ratio']:.2f}x"] for r in rows])
    targets = [t | {"section": s} for s, d in sections.items() for t in d.get("targets", [])
               if s != "loaders-gpu" or "gpu" in d]
    seen, unique = set(), []
    for t in targets:
        if t["target"] not in seen:
            seen.add(t["target"])
            unique.append(t)
    print("\ntargets:")
    for t in unique:
        state = "    " if t["met"] is None else "MET " if t["met"] else "MISS"
        unit = t.get("unit", "x")  # a ratio, or a figure with its unit (ms)
        measured = "not measured" if t["measured"] is None else \
            f"{t['measured']:.2f}x" if unit == "x" else f"{t['measured']:.3f} {unit}"
        print(f"  {state}  {t['target']}: {measured}")
    out.mkdir(parents=True, exist_ok=True)
    plots = plot(rows, sections, out, described)
    report = {"machine": machine, "quick": args.quick, "folder": args.folder or "built-in default data set",
              "stages": rows, "targets": unique, "table": table, "sections": sections}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out / 'report.json'}, " + ", ".join(str(p) for p in plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Loss and accuracy curves of a ``nets.train`` run (its ``metrics.jsonl``), as a PNG::

    python -m nets.plot runs/thinner [runs/resnet50 ...] --out curves.png
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def read_metrics(run: pathlib.Path) -> list[dict]:
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.exists():
        raise SystemExit(f"{path}: no metrics (is {run} a nets.train run folder?)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot(runs: list[pathlib.Path], out: pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        records = read_metrics(run)
        epochs = [r["epoch"] for r in records]
        label = run.name if run.is_dir() else run.parent.name
        for axes, key, style in ((loss_axes, "train_loss", "--"), (loss_axes, "val_loss", "-"),
                                 (accuracy_axes, "train_acc1", "--"), (accuracy_axes, "val_acc1", "-"),
                                 (accuracy_axes, "val_acc5", ":")):
            axes.plot(epochs, [r[key] for r in records], style, marker=".", label=f"{label} {key}")
    loss_axes.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="%", title="accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nets.plot", description=__doc__.split("\n\n")[0].removesuffix("::") + ".")
    parser.add_argument("runs", nargs="+", type=pathlib.Path, help="run folders (or metrics.jsonl files)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="default: RUN/curves.png of the first run")
    options = parser.parse_args(argv)
    out = options.out or (options.runs[0] if options.runs[0].is_dir() else options.runs[0].parent) / "curves.png"
    print(plot(options.runs, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``dctload`` command: one entry point for the library's tools.

    dctload bench [FOLDER] [--quick]               the DCT-vs-RGB throughput report
    dctload stats FOLDER [--out stats.json]       normalization statistics
    dctload train ROOT --output RUN [...]          python -m nets.train
    dctload evaluate CHECKPOINT [...]              python -m nets.evaluate
    dctload plot RUN [...]                         python -m nets.plot
    dctload make-shapes ROOT [--classes N ...]     a labelled JPEG folder of procedural shapes
"""

from __future__ import annotations

import argparse
import sys


def make_shapes(argv) -> int:
    from . import datasets

    parser = argparse.ArgumentParser(prog="dctload make-shapes", description=datasets.make_shapes.__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=150)
    parser.add_argument("--val-per-class", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    print(datasets.make_shapes(options.root, options.classes, options.train_per_class, options.val_per_class,
                               seed=options.seed))
    return 0


def _module_main(name: str):
    def run(argv) -> int:
        import importlib

        return importlib.import_module(name).main(argv)
    return run


COMMANDS = {
    "bench": _module_main("dctload.bench"),
    "stats": _module_main("dctload.stats"),
    "train": _module_main("nets.train"),
    "evaluate": _module_main("nets.evaluate"),
    "plot": _module_main("nets.plot"),
    "make-shapes": make_shapes,
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return COMMANDS[argv[0]](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())

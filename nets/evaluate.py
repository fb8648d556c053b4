"""Evaluate a ``nets.train`` checkpoint: top-1/top-5 and loss on a folder's validation split::

    python -m nets.evaluate runs/thinner/best.pt [--root ROOT] [--split val]

The model, its input size, channels and normalization statistics come from the checkpoint.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from torch import nn

from nets import train


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nets.evaluate", description=__doc__.split("\n\n")[0].removesuffix("::") + ".")
    parser.add_argument("checkpoint")
    parser.add_argument("--root", default=None, help="default: the training run's ROOT")
    parser.add_argument("--split", default="val")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: one per usable core)")
    parser.add_argument("--loader", default="cpu", help="dctload.loader backend (default: %(default)s)")
    parser.add_argument("--device", default=None)
    options = parser.parse_args(argv)
    checkpoint = train.load_checkpoint(options.checkpoint)
    args = argparse.Namespace(**checkpoint["args"])
    env = train.Distributed(options.device)
    args.root, args.loader, args.hw_decoder_load = options.root or args.root, options.loader, None
    batches = train.make_loader(args, env, options.split, train=False, batch_size=options.batch_size,
                                workers=options.workers)
    folder = os.path.join(args.root, options.split)
    if batches.classes != checkpoint["classes"]:
        raise SystemExit(f"{folder}: classes {batches.classes} are not the checkpoint's {checkpoint['classes']}")
    model = train.build_model(args, len(batches.classes), checkpoint["stats"])
    model.load_state_dict(checkpoint["model"])
    model = model.to(env.device, memory_format=torch.channels_last if args.channels_last else torch.contiguous_format)
    result = train.evaluate(model, batches, nn.CrossEntropyLoss(), args, env)
    if env.main:
        print(json.dumps({"checkpoint": options.checkpoint, "epoch": checkpoint["epoch"], "model": args.model, **result}))
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

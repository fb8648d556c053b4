"""Train a DCT-input ResNet (or torchvision's RGB ResNet-50 under the same recipe) on an
ImageFolder layout ``ROOT/train``, ``ROOT/val``::

    python -m nets.train ROOT --model late_concat_rfa_thinner --epochs 90 --output runs/thinner
    torchrun --nproc_per_node 8 -m nets.train ROOT ...      # DistributedDataParallel
    python -m nets.train ROOT --output runs/thinner --resume runs/thinner/checkpoint.pt

(also ``dctload train``). Data comes from ``dctload.loader`` (``--loader`` names the
backend) under one ``dctload.Recipe``: DCT models read coefficients in JPEG units,
normalized on the model's side after any JPEG-DL requantization; RGB models read
normalized RGB from the same recipe. Every epoch writes ``checkpoint.pt`` (and
``best.pt``) and a line of ``metrics.jsonl``; ``python -m nets.plot RUN`` draws them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import pathlib
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

import dctload
import dctload.stats
import nets
from dctload.loaders import BACKENDS, RGB_BACKENDS, default_workers

CHECKPOINT_VERSION = 1
DESCRIPTION = "Train a DCT-input ResNet (or torchvision's RGB ResNet-50 under the same recipe) on ROOT/train, ROOT/val."


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nets.train", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("root", help="folder with train/ and val/ ImageFolder trees")
    p.add_argument("--output", required=True, help="run folder: checkpoints, metrics, statistics")
    p.add_argument("--model", default="late_concat_rfa_thinner", choices=nets.list_models())
    p.add_argument("--channels", default=None, help="DCT channel subset: a preset (dctnet24) of dctload.batch")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier (1: the paper's models)")
    p.add_argument("--size", type=int, default=224, help="training crop side (a multiple of 16)")
    p.add_argument("--crop-scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("MIN", "MAX"),
                   help="RandomResizedCrop's area range")
    p.add_argument("--epochs", type=int, default=90)
    p.add_argument("--batch-size", type=int, default=256, help="per process and optimizer step, before accumulation")
    p.add_argument("--accumulate", type=int, default=1, help="batches per optimizer step")
    p.add_argument("--workers", type=int, default=None,
                   help="loader workers (or DALI threads) per process; default: one per usable core")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate for a global batch of 256 (scaled linearly)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="on conv/linear weights only")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--schedule", choices=("cosine", "step"), default="cosine")
    p.add_argument("--milestones", type=int, nargs="*", default=[30, 60, 80], help="step schedule: epochs of x0.1")
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--zero-init-residual", action="store_true")
    p.add_argument("--loader", choices=BACKENDS, default="cpu",
                   help="dctload.loader backend: cpu (DataLoader workers; exact resume) or a GPU backend; "
                        f"RGB models: {', '.join(RGB_BACKENDS)}")
    p.add_argument("--hw-decoder-load", type=float, default=None,
                   help="--loader dali: share of images for the GPU's hardware JPEG decoder (DALI's default 0.65)")
    p.add_argument("--stats", default=None, help="dctload stats file; estimated from the train set if absent")
    p.add_argument("--stats-images", type=int, default=500, help="train images for estimating statistics")
    p.add_argument("--on-error", choices=dctload.folder.ON_ERROR, default="raise",
                   help="bad files, in loading and in the statistics (DCT models; backends cpu and coefficients)")
    jpeg = p.add_argument_group("JPEG-DL requantization (DCT models) or JPEG layer (RGB models)")
    jpeg.add_argument("--jpeg-dl", action="store_true", help="learn quantization steps in front of the network")
    jpeg.add_argument("--jpeg-quality", type=int, default=None, help="initial steps: standard tables at this quality")
    jpeg.add_argument("--jpeg-proxy", choices=nets.jpeg_dl.PROXIES, default="soft")
    jpeg.add_argument("--jpeg-rounds", type=int, default=1)
    jpeg.add_argument("--jpeg-alpha", type=float, default=5.0)
    jpeg.add_argument("--jpeg-hardness", type=float, default=None, help="hardness matching: alpha = h / Q^2")
    jpeg.add_argument("--jpeg-steps-optimizer", choices=("adam", "sgd"), default="adam")
    jpeg.add_argument("--jpeg-steps-lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="a checkpoint.pt to continue from exactly")
    p.add_argument("--stop-after", type=int, default=None, help="stop after this many epochs of this invocation")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUTPUT/tensorboard")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training process")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# ---- Distributed set-up (torchrun's environment) ----

class Distributed:
    def __init__(self, device_arg: str | None):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_arg is None else device_arg.startswith("cuda")
        self.device = torch.device(f"cuda:{local_rank}" if cuda else (device_arg or "cpu"))
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        if self.world > 1:
            dist.destroy_process_group()


# ---- Model and optimisation ----

def build_model(args, num_classes: int, stats: dctload.stats.NormalizationStats | None) -> nn.Module:
    """The network with its input steps: for DCT models ``DCTModel`` (requantize ->
    normalize -> network), for RGB models an optional JPEG layer in front."""
    kwargs = {"zero_init_residual": args.zero_init_residual, "width": args.width}
    network = nets.create_model(args.model, num_classes, channels=args.channels, **kwargs)
    jpeg_options = dict(quality=args.jpeg_quality, rounds=args.jpeg_rounds, proxy=args.jpeg_proxy,
                        alpha=args.jpeg_alpha, hardness=args.jpeg_hardness)
    if not nets.is_dct_model(args.model):
        return nets.with_jpeg_layer(network, **jpeg_options) if args.jpeg_dl else network
    normalize = stats.normalize()
    if args.channels is not None:
        normalize = normalize.select(args.channels)
    requantize = nets.DCTRequantize(channels=args.channels, **jpeg_options) if args.jpeg_dl else None
    return nets.DCTModel(network, normalize, requantize)


def recipe(args, train: bool) -> dctload.Recipe:
    """The run's one recipe: every backend, DCT or RGB, reads it."""
    return dctload.Recipe(train=train, size=args.size, scale=tuple(args.crop_scale), channels=args.channels)


def make_loader(args, env, split: str, train: bool, batch_size: int | None = None, workers: int | None = None):
    """``dctload.loader`` of ROOT/``split`` under the run's recipe, backend and shard."""
    return dctload.loader(os.path.join(args.root, split), backend=args.loader, recipe=recipe(args, train),
                          batch_size=batch_size or args.batch_size, workers=workers, device=env.device,
                          rank=env.rank, world=env.world, seed=args.seed,
                          output="dct" if nets.is_dct_model(args.model) else "rgb", on_error=args.on_error,
                          hw_decoder_load=args.hw_decoder_load)


def lr_factor(step: int, steps_per_epoch: int, args) -> float:
    """Linear warm-up, then cosine to zero or x0.1 at each milestone (per optimizer step)."""
    epoch = step / steps_per_epoch
    if epoch < args.warmup_epochs:
        return (step + 1) / (args.warmup_epochs * steps_per_epoch)
    if args.schedule == "step":
        return 0.1 ** sum(epoch >= m for m in args.milestones)
    progress = (epoch - args.warmup_epochs) / max(args.epochs - args.warmup_epochs, 1e-9)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def autocast(args, device: torch.device):
    if args.amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if args.amp == "bf16" else torch.float16)


def to_device(inputs, device, channels_last: bool):
    inputs = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return tuple(x.to(device, non_blocking=True, memory_format=fmt) for x in inputs)


def accuracy_counts(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hits = top == targets[:, None]
    return int(hits[:, 0].sum()), int(hits.any(dim=1).sum())


# ---- State: checkpoints that resume exactly ----

def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomically(obj, path: pathlib.Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not a nets.train checkpoint of version {CHECKPOINT_VERSION}")
    return checkpoint


# ---- The loops ----

def train_one_epoch(model, loader, criterion, optimizers, schedulers, scaler, args, env, epoch, progress):
    model.train()
    loader.set_epoch(epoch)
    total_loss = correct = seen = 0.0
    start = time.perf_counter()
    bar = progress(loader, f"epoch {epoch + 1}/{args.epochs}")
    for i, (inputs, targets) in enumerate(bar):
        inputs = to_device(inputs, env.device, args.channels_last)
        targets = targets.to(env.device, non_blocking=True)
        last_of_step = (i + 1) % args.accumulate == 0
        sync = model.no_sync() if env.world > 1 and not last_of_step else contextlib.nullcontext()
        with sync:
            with autocast(args, env.device):
                logits = model(*inputs)
                loss = criterion(logits.float(), targets)
            scaler.scale(loss / args.accumulate).backward()
        if last_of_step:
            for optimizer in optimizers:
                scaler.step(optimizer)
            scaler.update()
            for optimizer in optimizers:
                optimizer.zero_grad(set_to_none=True)
            for scheduler in schedulers:
                scheduler.step()
        n = targets.shape[0]
        total_loss += float(loss.detach()) * n
        correct += accuracy_counts(logits.detach(), targets)[0]
        seen += n
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", img_s=f"{seen * env.world / (time.perf_counter() - start):.0f}")
    elapsed = time.perf_counter() - start
    loss_sum, correct, seen = env.sum([total_loss, correct, seen])
    return {"train_loss": loss_sum / max(seen, 1), "train_acc1": 100 * correct / max(seen, 1),
            "train_images_per_s": seen / elapsed, "train_images": int(seen)}


@torch.inference_mode()
def evaluate(model, loader, criterion, args, env, progress=None) -> dict:
    """Top-1/top-5 and loss over every image of ``loader``'s dataset, summed over ranks."""
    model.eval()
    loss_sum = top1 = top5 = seen = 0.0
    batches = progress(loader, "val") if progress else loader
    for inputs, targets in batches:
        inputs = to_device(inputs, env.device, args.channels_last)
        targets = targets.to(env.device, non_blocking=True)
        with autocast(args, env.device):
            logits = model(*inputs)
        loss_sum += float(criterion(logits.float(), targets)) * targets.shape[0]
        hit1, hit5 = accuracy_counts(logits, targets)
        top1, top5, seen = top1 + hit1, top5 + hit5, seen + targets.shape[0]
    loss_sum, top1, top5, seen = env.sum([loss_sum, top1, top5, seen])
    return {"val_loss": loss_sum / max(seen, 1), "val_acc1": 100 * top1 / max(seen, 1),
            "val_acc5": 100 * top5 / max(seen, 1), "val_images": int(seen)}


def normalization_stats(args, output: pathlib.Path, env: Distributed):
    """Statistics for the DCT model's Normalize: a given file, the run's saved one, or an
    estimate from training images (rank 0 estimates, the others wait and read)."""
    if args.stats:
        return dctload.stats.load(args.stats)
    path = output / "stats.json"
    if env.main and not path.exists():
        files = [p for p, _ in dctload.folder.scan(os.path.join(args.root, "train"), allow_empty=True)[0]]
        files = [files[i] for i in np.random.default_rng(args.seed).permutation(len(files))[:args.stats_images]]
        transform = dctload.Recipe.val(args.size).dct_transform()
        dctload.stats.estimate(files, transform, on_error=args.on_error).save(path)
    if env.world > 1:
        dist.barrier()
    return dctload.stats.load(path)


def make_progress(enabled: bool):
    if not enabled:
        return lambda iterable, desc: iterable
    from tqdm import tqdm

    return lambda iterable, desc: tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.size % 16:
        raise SystemExit(f"--size must be a multiple of 16 (the DCT contract's 4:2:0 grid), not {args.size}")
    env = Distributed(args.device)
    output = pathlib.Path(args.output)
    if env.main:
        output.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dct = nets.is_dct_model(args.model)
    if args.channels and not dct:
        raise SystemExit(f"--channels is for DCT models; {args.model} reads RGB")
    if args.workers is None:
        args.workers = default_workers(env.device)
    pin = env.device.type == "cuda"
    try:  # dctload.loader checks the options before it reads any file
        train_batches = make_loader(args, env, "train", train=True, workers=args.workers)
        val_batches = make_loader(args, env, "val", train=False, workers=args.workers)
    except ValueError as exc:
        raise SystemExit(f"nets.train: {exc}") from None
    if train_batches.classes != val_batches.classes:
        raise SystemExit(f"train and val classes differ: {train_batches.classes} vs {val_batches.classes}")
    if len(train_batches) < args.accumulate:
        raise SystemExit(f"{len(train_batches.samples)} training images give {len(train_batches)} batches of {args.batch_size} "
                         f"per process: fewer than --accumulate {args.accumulate}")

    stats = normalization_stats(args, output, env) if dct else None
    core = build_model(args, len(train_batches.classes), stats).to(env.device)
    if args.channels_last:
        core = core.to(memory_format=torch.channels_last)
    global_batch = args.batch_size * args.accumulate * env.world
    optimizers = nets.make_optimizers(core, lr=args.lr * global_batch / 256, momentum=args.momentum,
                                      nesterov=args.nesterov, weight_decay=args.weight_decay,
                                      steps_optimizer=args.jpeg_steps_optimizer, steps_lr=args.jpeg_steps_lr)
    steps_per_epoch = len(train_batches) // args.accumulate
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, steps_per_epoch, args)) for o in optimizers]
    scaler = torch.amp.GradScaler(env.device.type, enabled=args.amp == "fp16")
    start_epoch, best_acc1 = 0, -1.0

    if args.resume:
        checkpoint = load_checkpoint(args.resume)
        if checkpoint["args"]["model"] != args.model:
            raise SystemExit(f"{args.resume} holds a {checkpoint['args']['model']}, not a {args.model}")
        core.load_state_dict(checkpoint["model"])
        for thing, state in zip((*optimizers, *schedulers), (*checkpoint["optimizers"], *checkpoint["schedulers"])):
            thing.load_state_dict(state)
        scaler.load_state_dict(checkpoint["scaler"])
        start_epoch, best_acc1 = checkpoint["epoch"], checkpoint["best_acc1"]
        set_rng_state(checkpoint["rng"][env.rank] if env.rank < len(checkpoint["rng"]) else checkpoint["rng"][0])

    model = core
    if env.world > 1:
        model = nn.parallel.DistributedDataParallel(core, device_ids=[env.device.index] if pin else None)
    if args.compile:
        model = torch.compile(model)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    progress = make_progress(env.main and not args.no_progress)
    writer = None
    if args.tensorboard and env.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(output / "tensorboard")
    if env.main:
        (output / "args.json").write_text(json.dumps(vars(args), indent=1))
        print(f"{args.model}: {len(train_batches.samples)} train / {len(val_batches.samples)} val images, "
              f"{len(train_batches.classes)} classes, "
              f"{env.world} process(es) on {env.device}, global batch {global_batch}", flush=True)

    for epoch in range(start_epoch, args.epochs):
        epoch_start = time.perf_counter()
        record = {"epoch": epoch + 1, "lr": optimizers[0].param_groups[0]["lr"]}
        record.update(train_one_epoch(model, train_batches, criterion, optimizers, schedulers, scaler, args, env,
                                      epoch, progress))
        record.update(evaluate(model, val_batches, criterion, args, env))
        record["epoch_seconds"] = time.perf_counter() - epoch_start
        if args.on_error != "raise":  # files skipped this epoch, each logged and listed in the dataset's record
            for split, batches in (("train", train_batches), ("val", val_batches)):
                if hasattr(batches.dataset, "log_skipped"):
                    record[f"{split}_skipped_files"] = len(batches.dataset.log_skipped(epoch + 1))
        rngs = [None] * env.world
        if env.world > 1:
            dist.all_gather_object(rngs, rng_state())
        else:
            rngs = [rng_state()]
        if env.main:
            improved = record["val_acc1"] > best_acc1
            best_acc1 = max(best_acc1, record["val_acc1"])
            checkpoint = {
                "version": CHECKPOINT_VERSION, "model": core.state_dict(), "epoch": epoch + 1, "best_acc1": best_acc1,
                "optimizers": [o.state_dict() for o in optimizers], "schedulers": [s.state_dict() for s in schedulers],
                "scaler": scaler.state_dict(), "rng": rngs, "args": vars(args), "classes": train_batches.classes,
                "stats": stats,
            }
            save_atomically(checkpoint, output / "checkpoint.pt")
            if improved:
                shutil.copyfile(output / "checkpoint.pt", output / "best.pt")
            with open(output / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if writer is not None:
                for key, value in record.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch + 1)
                writer.flush()
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f} acc1 {record['train_acc1']:.1f}% "
                  f"({record['train_images_per_s']:.0f} img/s) | val loss {record['val_loss']:.4f} "
                  f"acc1 {record['val_acc1']:.2f}% acc5 {record['val_acc5']:.2f}% | {record['epoch_seconds']:.0f} s",
                  flush=True)
        else:
            best_acc1 = max(best_acc1, record["val_acc1"])
        if args.stop_after is not None and epoch + 1 - start_epoch >= args.stop_after:
            break
    if writer is not None:
        writer.close()
    env.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

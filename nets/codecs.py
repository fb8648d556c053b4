"""``dctload codecs FOLDER``: learned image codecs against JPEG, trained and measured in one run.

    python -m nets.codecs FOLDER --out codecs-run [--minutes 20] [--lmbdas 0.0035,0.013,0.05]
                          [--qualities 10,15,20] [--crop 128] [--batch 8] [--device cpu]

Splits FOLDER's JPEGs into training files and held-out ones (every ``--hold-out``-th
file, never trained on), then trains, each for its share of ``--minutes``:
- Balle et al. 2017 (:mod:`nets.balle2017`), one model per ``lmbda``;
- ComCNN/RecCNN around JPEG (:mod:`nets.comcnn`), one pair per JPEG quality,
on random crops of the training files. It evaluates every model on the held-out files'
256 x 256 centre crops through real bytes (the range coder's; the compact image's JPEG
file), against JPEG 4:2:0 and 4:4:4 (Pillow, qualities 1-95) at the same real bits per
pixel, and writes ``rd.json`` (every point, the training curves, the comparisons at
matched rates, the device and the times) and ``rd.png`` (PSNR and MS-SSIM against bpp).
"""

from __future__ import annotations

import argparse
import io
import json
import pathlib
import time
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from .balle2017 import Balle2017, rate_distortion_loss
from .comcnn import CompressionFramework

EVAL_SIZE = 256
JPEG_QUALITIES = (1, 3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def load_rgb(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def split(files: Sequence[pathlib.Path], hold_out: int) -> tuple[list, list]:
    """(training files, held-out files): every ``hold_out``-th file is held out."""
    held = [f for i, f in enumerate(files) if i % hold_out == 0]
    return [f for i, f in enumerate(files) if i % hold_out], held


def centre_crops(files, size: int = EVAL_SIZE) -> torch.Tensor:
    """(N, 3, size, size) centre crops in [0, 1] of the files at least ``size`` a side."""
    crops = []
    for f in files:
        rgb = load_rgb(f)
        h, w = rgb.shape[:2]
        if min(h, w) < size:
            continue
        top, left = (h - size) // 2, (w - size) // 2
        crops.append(torch.from_numpy(rgb[top:top + size, left:left + size].copy()).permute(2, 0, 1))
    if not crops:
        raise ValueError(f"no held-out image is {size} px a side or more")
    return torch.stack(crops).float() / 255


class RandomCrops:
    """Random ``size`` crops (and horizontal flips) of images held in memory, as batches."""

    def __init__(self, files, size: int, seed: int = 0):
        self.images = [im for im in (load_rgb(f) for f in files) if min(im.shape[:2]) >= size]
        if not self.images:
            raise ValueError(f"no training image is {size} px a side or more")
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        out = []
        for k in self.rng.integers(0, len(self.images), n):
            im = self.images[k]
            top = self.rng.integers(0, im.shape[0] - self.size + 1)
            left = self.rng.integers(0, im.shape[1] - self.size + 1)
            crop = im[top:top + self.size, left:left + self.size]
            out.append(torch.from_numpy((crop[:, ::-1] if self.rng.integers(0, 2) else crop).copy()))
        return torch.stack(out).permute(0, 3, 1, 2).float() / 255


def train(model: torch.nn.Module, loss_of, crops: RandomCrops, seconds: float, batch: int, lr: float,
          device: str) -> dict:
    """Adam on ``loss_of(model, x)`` for ``seconds``; the loss every 10 steps."""
    model.to(device).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    history, steps, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps == 0:
        x = crops.batch(batch).to(device)
        loss = loss_of(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % 10 == 1:
            history.append([steps, loss.item()])
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - start, 1), "loss_history": history}


def quality(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[float, float]:
    """(PSNR dB, MS-SSIM) of one image pair in [0, 1], x_hat rounded to 8 bits as a decoder gives it."""
    from pytorch_msssim import ms_ssim

    x_hat = torch.round(x_hat.clamp(0, 1) * 255) / 255
    mse = F.mse_loss(x_hat, x).item()
    return 10 * np.log10(1 / max(mse, 1e-12)), float(ms_ssim(x_hat, x, data_range=1.0))


def mean_point(points: list[tuple[float, float, float]]) -> dict:
    bpp, psnr, msssim = np.mean(points, axis=0)
    return {"bpp": float(bpp), "psnr_db": float(psnr), "ms_ssim": float(msssim)}


def jpeg_curve(images: torch.Tensor, subsampling: int) -> list[dict]:
    """Mean bpp, PSNR and MS-SSIM of JPEG (Pillow, ``subsampling`` 0 = 4:4:4, 2 = 4:2:0) per quality."""
    from PIL import Image

    curve = []
    for q in JPEG_QUALITIES:
        points = []
        for x in images:
            out = io.BytesIO()
            Image.fromarray(x.mul(255).round().byte().permute(1, 2, 0).numpy()).save(out, "JPEG", quality=q,
                                                                                      subsampling=subsampling)
            with Image.open(out) as im:
                decoded = torch.from_numpy(np.asarray(im.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
            points.append((8 * out.tell() / (x.shape[1] * x.shape[2]), *quality(x[None], decoded[None])))
        curve.append({"quality": q, **mean_point(points)})
    return curve


def at_rate(curve: list[dict], bpp: float, key: str = "psnr_db") -> float | None:
    """The curve's ``key`` at ``bpp`` (linear between its points), None outside it."""
    curve = sorted(curve, key=lambda p: p["bpp"])
    rates = [p["bpp"] for p in curve]
    if not rates[0] <= bpp <= rates[-1]:
        return None
    return float(np.interp(bpp, rates, [p[key] for p in curve]))


def against(evaluation: dict, curve: list[dict], name: str) -> dict:
    """A model's point against a JPEG curve at the same real rate: JPEG's PSNR there and
    the gain. Below JPEG's lowest rate (quality 1: its tables and Huffman codes alone cost
    bits) JPEG cannot reach the rate at all; the gain over its lowest point, which spends
    more bits, is then a lower bound (``"below_jpeg_lowest_rate": true``)."""
    at = at_rate(curve, evaluation["bpp"])
    lowest = min(curve, key=lambda p: p["bpp"])
    below = at is None and evaluation["bpp"] < lowest["bpp"]
    reference = lowest["psnr_db"] if below else at
    return {f"{name}_psnr_at_same_bpp": at,
            f"gain_over_{name}_db": None if reference is None else evaluation["psnr_db"] - reference,
            f"{name}_below_lowest_rate": below}


def evaluate_balle(model: Balle2017, images: torch.Tensor, device: str) -> dict:
    """Real bytes through the range coder, and the entropy model's estimate of them."""
    model.entropy.update()
    points, coded, estimated = [], 0, 0.0
    for x in images:
        x = x[None].to(device)
        data = model.compress(x)
        x_hat = model.decompress(data)
        pixels = x.shape[-2] * x.shape[-1]
        with torch.no_grad():
            estimated += float(-torch.log2(model(x)["likelihoods"]).sum())
        coded += 8 * len(data)
        points.append((8 * len(data) / pixels, *quality(x.cpu(), x_hat.cpu())))
    return {**mean_point(points), "coded_bits": coded, "estimated_bits": round(estimated, 1)}


def evaluate_comcnn(model: CompressionFramework, images: torch.Tensor, device: str) -> dict:
    points = []
    for x in images:
        x = x[None].to(device)
        data = model.encode(x)
        x_hat = model.decode(data, x.shape[-2:])
        points.append((8 * len(data) / (x.shape[-2] * x.shape[-1]), *quality(x.cpu(), x_hat.cpu())))
    return mean_point(points)


def plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, label in ((axes[0], "psnr_db", "PSNR (dB)"), (axes[1], "ms_ssim", "MS-SSIM")):
        for name, style in (("jpeg_420", "k--"), ("jpeg_444", "k:")):
            curve = result["jpeg"][name]
            ax.plot([p["bpp"] for p in curve], [p[key] for p in curve], style, marker=".",
                    label=f"JPEG {name[-3]}:{name[-2]}:{name[-1]}")
        balle = sorted(result["balle2017"], key=lambda m: m["eval"]["bpp"])
        if balle:
            ax.plot([m["eval"]["bpp"] for m in balle], [m["eval"][key] for m in balle], "o-", label="Balle 2017")
        com = sorted(result["comcnn"], key=lambda m: m["eval"]["bpp"])
        if com:
            ax.plot([m["eval"]["bpp"] for m in com], [m["eval"][key] for m in com], "s-", label="ComCNN/RecCNN + JPEG")
        ax.set_xlabel("bits per pixel (real file sizes)")
        ax.set_ylabel(label)
        ax.set_xlim(0, 2.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['held_out_images']} held-out 256x256 crops; {result['device']}, "
                 f"{result['minutes']} min of training", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    from dctload.folder import list_jpegs

    parser = argparse.ArgumentParser(prog="dctload codecs", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder of JPEG files")
    parser.add_argument("--out", default="codecs-run", help="output folder (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time, shared by all models")
    parser.add_argument("--lmbdas", default="0.0035,0.013,0.05", help="Balle models' rate-distortion trade-offs")
    parser.add_argument("--qualities", default="10,15,20", help="ComCNN/RecCNN pairs' JPEG qualities")
    parser.add_argument("--channels", type=int, default=128, help="Balle latent channels (paper: 128)")
    parser.add_argument("--rec-depth", type=int, default=20, help="RecCNN layers (paper: 20)")
    parser.add_argument("--crop", type=int, default=128, help="training crop side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hold-out", type=int, default=10, help="every N-th file is held out for evaluation")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    files = list_jpegs(args.folder)
    if len(files) < 2:
        parser.error(f"{args.folder}: fewer than 2 JPEG files")
    train_files, held_files = split(files, args.hold_out)
    crops = RandomCrops(train_files, args.crop, args.seed)
    images = centre_crops(held_files)
    lmbdas = [float(v) for v in args.lmbdas.split(",") if v]
    qualities = [int(v) for v in args.qualities.split(",") if v]
    seconds = 60 * args.minutes / max(1, len(lmbdas) + len(qualities))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else \
        f"CPU ({torch.get_num_threads()} threads)"
    result = {"folder": str(args.folder), "training_files": len(crops.images), "held_out_images": len(images),
              "device": device_name, "minutes": args.minutes, "crop": args.crop, "batch": args.batch,
              "jpeg": {"jpeg_420": jpeg_curve(images, 2), "jpeg_444": jpeg_curve(images, 0)},
              "balle2017": [], "comcnn": []}
    def run(model, loss_of, lr: float, evaluate) -> tuple[dict, dict]:
        """Trains ``model`` for its share of the time, evaluates it on the held-out crops and
        compares it with both JPEG curves at its rate: (training log, evaluation)."""
        log = train(model, loss_of, crops, seconds, args.batch, lr, args.device)
        evaluation = evaluate(model, images, args.device)
        for name in ("jpeg_420", "jpeg_444"):
            evaluation.update(against(evaluation, result["jpeg"][name], name))
        return log, evaluation

    for lmbda in lmbdas:
        log, evaluation = run(Balle2017(args.channels),
                              lambda m, x, lmbda=lmbda: rate_distortion_loss(m(x), x, lmbda)["loss"],
                              1e-4 if args.device != "cpu" else 3e-4, evaluate_balle)
        result["balle2017"].append({"lmbda": lmbda, "train": log, "eval": evaluation})
        print(f"Balle 2017, lmbda {lmbda}: {log['steps']} steps in {log['seconds']} s; {evaluation['bpp']:.3f} bpp, "
              f"{evaluation['psnr_db']:.2f} dB (gain over JPEG 4:2:0 at that rate: {evaluation['gain_over_jpeg_420_db']}); "
              f"coded {evaluation['coded_bits']} bits, estimated {evaluation['estimated_bits']:.0f}", flush=True)
    for q in qualities:
        log, evaluation = run(CompressionFramework(q, depth=args.rec_depth), lambda m, x: F.mse_loss(m(x), x), 1e-3,
                              evaluate_comcnn)
        result["comcnn"].append({"quality": q, "train": log, "eval": evaluation})
        print(f"ComCNN/RecCNN at quality {q}: {log['steps']} steps in {log['seconds']} s; {evaluation['bpp']:.3f} "
              f"bpp, {evaluation['psnr_db']:.2f} dB (gain over JPEG 4:2:0 at that rate: "
              f"{evaluation['gain_over_jpeg_420_db']}, 4:4:4: {evaluation['gain_over_jpeg_444_db']}; below JPEG's "
              f"lowest rate: {evaluation['jpeg_420_below_lowest_rate']})", flush=True)
    (out / "rd.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, out / "rd.png")
    print(f"wrote {out / 'rd.json'}, {out / 'rd.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

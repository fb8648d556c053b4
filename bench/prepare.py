"""Prepared data sets: ``dctload prepare`` against Pillow's decode, resize and encode.

    python -m bench.prepare [FOLDER] [--rounds N] [--limit N] [--quick] [--out NAME]

On the files of FOLDER (default: the built-in default data set), held in memory, one
process, one thread:
- speed of preparing (``--short-side 256 --quality 90``, 4:2:0): dctload on coefficients
  against Pillow (decode, antialiased bilinear resize, encode at the same tables and
  subsampling, optimized Huffman tables as dctload writes them), and the floor of the DCT
  route: entropy decoding the original plus entropy coding the result;
- rate and distortion: PSNR of each prepared image against the pixel-domain reference
  (the original decoded and resized in float), dctload at quality 90 against Pillow's
  curve over qualities 80-96, at the same bytes and at the same PSNR;
- the reader (coefficients, 1 thread) on the files prepared to 256 and to 512 (FFCV's
  maximum side) against the originals;
- loading prepared the way FFCV's recipe does (512 and 256 maximum side, every file
  re-encoded at quality 90, ``--small requantize``): the training
  recipe through dctload's batch path on dctload's prepared files, and decode_jpeg +
  transforms.v2 on Pillow's (and on dctload's, the same files), against the originals.
Writes dctload-bench/prepare-<folder name>.json. Targets (issue 30): preparing at least
2x faster than Pillow per core; PSNR within 0.3 dB of Pillow's at the same size (or
smaller at the same PSNR); the reader at least 2x faster on the 256 prepared files.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import time

if __package__ in (None, ""):  # run as a file: import the bench package beside it
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.pipeline import batch_path, decode_jpeg, each  # noqa: E402

import numpy as np  # noqa: E402

import dctload  # noqa: E402
from dctload import prepare as P  # noqa: E402

SHORT = P.Options(short_side=256, quality=90)
#: FFCV's published ImageNet preparation: maximum side 512 (and 256), quality 90.
FFCV_SIDES = (512, 256)
PILLOW_QUALITIES = (80, 85, 88, 90, 92, 94, 96)
TARGETS = (
    ("prepare >= 2x faster than Pillow per core", "Pillow: decode, resize, encode", "dctload prepare", 2.0, ">="),
    ("reader >= 2x faster on files prepared to 256", "read: originals", "read: prepared --short-side 256", 2.0, ">="),
)
PSNR_MARGIN_DB = 0.3


def preparing(datas: list[bytes], options: P.Options) -> dict:
    """Contestants of the prepare speed: dctload, Pillow, and the DCT route's floor."""
    prepared = [P.prepare_image(d, options)[0] for d in datas]
    small = [dctload.read_coefficients(p) for p in prepared]
    small = [dctload.DCTImage(*[None if c is None else np.ascontiguousarray(c) for c in (i.y, i.cb, i.cr)],
                              qt=i.qt, width=i.width, height=i.height, sampling=i.sampling,
                              colorspace=i.colorspace, progressive=False) for i in small]

    def floor():
        spent = 0.0
        for data, image in zip(datas, small):
            start = time.perf_counter()
            dctload.read_coefficients(data)
            dctload.write_coefficients(image)
            spent += time.perf_counter() - start
        return spent

    return {
        "dctload prepare": each(lambda d: P.prepare_image(d, options), datas),
        "Pillow: decode, resize, encode": each(lambda d: P.prepare_with_pillow(d, options), datas),
        "floor: entropy decoding + entropy coding": floor,
    }


def rate_distortion(datas: list[bytes]) -> dict:
    """Total bytes and mean PSNR (dB) against the pixel-domain reference, of dctload at
    quality 90 and of Pillow over :data:`PILLOW_QUALITIES`, on the files both resize."""
    scaled = [d for d in datas if SHORT.target_size(*_size(d))]
    if not scaled:
        return {"files": 0, "psnr_gain_db_at_same_bytes": None, "bytes_ratio_at_same_psnr": None}

    def point(outputs):
        return {"bytes": sum(map(len, outputs)),
                "psnr_db": float(np.mean([P.psnr_against_reference(d, o) for d, o in zip(scaled, outputs)]))}

    ours = point([P.prepare_image(d, SHORT)[0] for d in scaled])
    curve = {q: point([P.prepare_with_pillow(d, dataclasses.replace(SHORT, quality=q))[0] for d in scaled])
             for q in PILLOW_QUALITIES}
    sizes = [curve[q]["bytes"] for q in PILLOW_QUALITIES]
    psnrs = [curve[q]["psnr_db"] for q in PILLOW_QUALITIES]
    at_bytes = float(np.interp(ours["bytes"], sizes, psnrs)) if sizes[0] <= ours["bytes"] <= sizes[-1] else None
    at_psnr = float(np.interp(ours["psnr_db"], psnrs, sizes)) if psnrs[0] <= ours["psnr_db"] <= psnrs[-1] else None
    return {"files": len(scaled), "dctload_q90": ours, "pillow": curve,
            "pillow_psnr_db_at_dctload_bytes": at_bytes,
            "psnr_gain_db_at_same_bytes": None if at_bytes is None else ours["psnr_db"] - at_bytes,
            "pillow_bytes_at_dctload_psnr": at_psnr,
            "bytes_ratio_at_same_psnr": None if at_psnr is None else ours["bytes"] / at_psnr}


def _size(data: bytes) -> tuple[int, int]:
    header = dctload.read_header(data)
    return header["height"], header["width"]


def prepared_sets(datas: list[bytes]) -> dict[str, list[bytes]]:
    """The originals and each prepared set, in memory: dctload's and Pillow's at FFCV's sides,
    and dctload's at short side 256."""
    sets = {"originals": datas, "prepared --short-side 256": [P.prepare_image(d, SHORT)[0] for d in datas]}
    for side in FFCV_SIDES:
        options = P.Options(max_side=side, quality=90, small="requantize")  # FFCV re-encodes every file
        sets[f"dctload --max-side {side}"] = [P.prepare_image(d, options)[0] for d in datas]
        sets[f"Pillow --max-side {side}"] = [P.prepare_with_pillow(d, options)[0] for d in datas]
    return sets


def loading(sets: dict[str, list[bytes]]) -> dict:
    """Contestants: the reader on each dctload set; the training recipe, DCT on dctload's
    sets and RGB on Pillow's (and on dctload's 256, the same files)."""
    import torch

    torch.set_num_threads(1)
    train = dctload.Recipe().dct_transform()
    rgb_train = dctload.Recipe().rgb_transform()
    tensors = {name: [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas] for name, datas in sets.items()}

    def read(datas):
        return each(dctload.read_coefficients, datas)

    contestants = {"read: originals": read(sets["originals"]),
                   "read: prepared --short-side 256": read(sets["prepared --short-side 256"])}
    for side in FFCV_SIDES:
        contestants[f"read: prepared --max-side {side}"] = read(sets[f"dctload --max-side {side}"])
    contestants["train DCT: originals"] = batch_path(train, sets["originals"])
    contestants["train RGB: originals"] = each(decode_jpeg(rgb_train), tensors["originals"])
    for side in FFCV_SIDES:
        contestants[f"train DCT: dctload --max-side {side}"] = batch_path(train, sets[f"dctload --max-side {side}"])
        contestants[f"train RGB: Pillow --max-side {side}"] = each(decode_jpeg(rgb_train),
                                                                   tensors[f"Pillow --max-side {side}"])
        contestants[f"train RGB: dctload --max-side {side}"] = each(decode_jpeg(rgb_train),
                                                                    tensors[f"dctload --max-side {side}"])
    return contestants


def main(argv=None) -> int:
    args = common.parse_data_arguments(__doc__.split("\n\n")[0], "prepare", argv)
    folder, files, refused = common.readable_files(args)
    datas = [f.read_bytes() for f in files]
    datas = [d for d in datas if dctload.read_header(d)["colorspace"] in ("YCbCr", "gray")]
    if not datas:
        print(f"no JPEG with YCbCr coefficients under {folder}", file=sys.stderr)
        return 1
    print(f"{len(datas)} files from {folder} ({len(refused)} refused, left out), {args.rounds} rounds")

    times = common.interleaved(preparing(datas, SHORT), args.rounds)
    speed, speed_table = common.figures_table(times, len(datas), "dctload prepare", "prepare (short side 256, q90)")
    floor = common.median_ratio(times["Pillow: decode, resize, encode"],
                                times["floor: entropy decoding + entropy coding"])
    print(f"\nthe DCT route's floor (entropy decoding + coding) is {floor:.2f}x faster than Pillow: the most "
          f"any DCT-domain prepare can reach; dctload is at "
          f"{common.median_ratio(times['dctload prepare'], times['floor: entropy decoding + entropy coding']):.2f}x "
          f"the floor's time")

    print("\nrate and distortion (short side 256, PSNR against decode + float resize):")
    rd = rate_distortion(datas)
    if rd["files"]:
        print(f"  dctload q90: {rd['dctload_q90']['bytes'] / 1e3:.0f} kB, {rd['dctload_q90']['psnr_db']:.3f} dB")
        for q, point in rd["pillow"].items():
            print(f"  Pillow q{q}: {point['bytes'] / 1e3:.0f} kB, {point['psnr_db']:.3f} dB")
    gain, ratio = rd["psnr_gain_db_at_same_bytes"], rd["bytes_ratio_at_same_psnr"]
    print(f"  at dctload's size, dctload - Pillow = {gain:+.3f} dB; at dctload's PSNR, dctload's bytes are "
          f"{ratio:.3f}x Pillow's" if gain is not None and ratio is not None else
          "  not measured: no file to shrink, or outside Pillow's curve")

    sets = prepared_sets(datas)
    sizes = {name: sum(map(len, d)) for name, d in sets.items()}
    load_times = common.interleaved(loading(sets), args.rounds)
    load_figures, load_table = common.figures_table(load_times, len(datas), "read: originals", "loading")

    print()
    results = common.report_targets({**times, **load_times}, TARGETS)
    met = None if gain is None else gain >= -PSNR_MARGIN_DB or (ratio is not None and ratio <= 1.0)
    label = f"PSNR within {PSNR_MARGIN_DB} dB of Pillow's at the same size (or smaller at the same PSNR)"
    print(f"  {'MET ' if met else 'MISS'}  {label}: {gain:+.3f} dB" if gain is not None else f"  SKIP  {label}")
    results.append({"target": label, "measured": gain, "bound": -PSNR_MARGIN_DB, "met": met, "unit": "dB"})
    results.append({"target": "ceiling: the DCT route's floor against Pillow", "measured": floor, "bound": None,
                    "met": None})
    prepared_ratios = {}
    for side in FFCV_SIDES:
        prepared_ratios[str(side)] = common.median_ratio(load_times[f"train RGB: Pillow --max-side {side}"],
                                                         load_times[f"train DCT: dctload --max-side {side}"])
        print(f"  train recipe on files prepared to {side}: DCT {prepared_ratios[str(side)]:.2f}x RGB")
    path = common.write_json(args.out or f"prepare-{folder.name}", {
        "benchmark": "prepare", "folder": common.folder_label(folder), "files": len(datas), "refused": refused,
        "rounds": args.rounds, "machine": common.machine(), "figures": {**speed, **load_figures},
        "floor_ratio_vs_pillow": floor, "rate_distortion": rd, "set_bytes": sizes,
        "train_dct_over_rgb_prepared": prepared_ratios, "targets": results,
        "table": speed_table + "\n\n" + load_table,
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

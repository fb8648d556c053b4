"""Fuzzing target for the reader (atheris, libFuzzer's engine) over the Python API.

    python fuzz/fuzz_reader.py CORPUS_DIR [SEED_DIR ...] -max_total_time=120 -timeout=10 -rss_limit_mb=2048

Each input goes through ``read_header`` and ``read_coefficients`` (with and without
``strict`` and the pixel fallback), and through the batch path (``dctload.fused``: the
train and validation recipes' draws on its header, crop-aware decoding and the C
resampling, with random boxes and flips; and ``read_packed``, the GPU path's packets); a
clean read is written back (``write_coefficients``) and must read back the same, and
prepared (``dctload prepare``'s resize to any size and requantization) to a file that reads back.
A ``JPEGError`` (or ``OSError``) is the expected
answer to bad bytes; anything else, a crash, an input slower than ``-timeout`` seconds or
memory past ``-rss_limit_mb`` fails the run and leaves a ``crash-*``/``timeout-*``/``oom-*``
file to turn into a regression test. ``bash run.sh fuzz [SECONDS]`` seeds a corpus from
``../shared/data/jpeg-edge`` and mutated ImageNet samples and runs it.
"""

import sys

import atheris
import torch  # not instrumented: only dctload's own code is

with atheris.instrument_imports():
    import numpy as np

    import dctload
    import dctload.transforms as T
    from dctload import fused, prepare
    from dctload.recipe import Recipe

PLANS = [fused.plan(Recipe(train=True, size=32).dct_transform()), fused.plan(Recipe.val(32).dct_transform())]
PACKET_PLAN = fused.plan(Recipe(train=True, size=32).packet_transform())

PREPARE = prepare.Options(max_side=24, quality=50, subsampling="420")
MAX_PIXELS = 1 << 24  # refuse images above 16 MP, as a loader would: bombs are refused, not decoded


def touch(image) -> None:
    for plane in image.components:  # read every coefficient: a bad view would fault here
        if plane.dtype != np.int16:
            raise AssertionError(f"coefficients of dtype {plane.dtype}")
        int(np.abs(plane.astype(np.int32)).sum())
    for table in image.qt:
        if table.shape != (64,) or table.min() < 1:
            raise AssertionError(f"bad quantization table {table}")


def test_one_input(data: bytes) -> None:
    try:
        dctload.read_header(data)
    except dctload.JPEGError:
        pass
    for options in ({}, {"strict": True}, {"fallback": "pixels"}):
        try:
            image = dctload.read_coefficients(data, max_pixels=MAX_PIXELS, **options)
        except dctload.JPEGError:
            continue
        touch(image)
        if options.get("strict"):  # a clean read writes back to the same coefficients
            try:
                back = dctload.read_coefficients(dctload.write_coefficients(image, progressive=len(data) % 2 == 1))
            except ValueError:  # coefficients no 8-bit JPEG can code (JPEGError is one too)
                continue
            if not all(np.array_equal(a, b) for a, b in zip(image.components, back.components)):
                raise AssertionError("write_coefficients did not round-trip")
            if image.width * image.height <= MAX_PIXELS:
                try:
                    prepared, _, _ = prepare.prepare_image(data, PREPARE)
                except ValueError:  # resized coefficients 8-bit JPEG cannot code (a JPEGError is one too)
                    continue
                if max(dctload.read_header(prepared)["width"], dctload.read_header(prepared)["height"]) > 24 \
                        and max(image.width, image.height) > 24:
                    raise AssertionError("prepare did not shrink the image")
    torch.manual_seed(len(data))
    for plan in PLANS:
        views, errors = fused.draw([data], [None], plan)
        if errors[0] is not None:
            continue
        y, cbcr, outcomes = fused.read_resampled([data], views, max_pixels=MAX_PIXELS)
        if outcomes[0].error is None and not (torch.isfinite(y).all() and torch.isfinite(cbcr).all()):
            raise AssertionError("non-finite coefficients from the batch path")
    views, errors = fused.draw([data], [None], PACKET_PLAN)  # the GPU path's packets, in one C call
    if errors[0] is None:
        packed, _, outcomes = fused.read_packed([data], views, max_pixels=MAX_PIXELS)
        if packed is not None and int(np.unpackbits(packed.masks.numpy()).sum()) != packed.values.numel():
            raise AssertionError("the packets' masks and values disagree")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

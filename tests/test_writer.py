"""dctload.write_coefficients: the inverse of read_coefficients, bit for bit, and files
that every decoder reads."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import dctload
import dctload.coefficients
from conftest import SHARED_DATA, SKIP_REASON, encode, oracle, photo_like

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=SKIP_REASON)


def same_coefficients(a: dctload.DCTImage, b: dctload.DCTImage) -> bool:
    return (len(a.components) == len(b.components) and all(np.array_equal(x, y) for x, y in zip(a.components, b.components))
            and np.array_equal(a.qt, b.qt) and a.sampling == b.sampling and (a.width, a.height) == (b.width, b.height))


def readable(folder: str) -> list:
    """The files of ../shared/data/``folder`` that dctload reads (YCbCr or gray)."""
    files = sorted(p for p in (SHARED_DATA / folder).rglob("*") if p.is_file() and p.suffix.lower() != ".txt"
                   and p.name != "MANIFEST.tsv")
    images = []
    for path, result in zip(files, dctload.read_batch(files, errors="return")):
        if not isinstance(result, BaseException):
            images.append((path, result))
    return images


@needs_data
@pytest.mark.parametrize("folder", ["imagenet-sample", "jpeg-edge"])
def test_every_readable_file_round_trips_bit_exactly(folder):
    """Every file that reads without warnings; a damaged one whose garbage coefficients no
    8-bit JPEG can code (hopper_bad_exif.jpg: a DC of 2945) is refused with a ValueError."""
    images = readable(folder)
    assert len(images) >= (490 if folder == "imagenet-sample" else 40)
    for path, image in images:
        for progressive in (False, True):
            try:
                back = dctload.read_coefficients(dctload.write_coefficients(image, progressive=progressive))
            except ValueError as exc:
                assert image.warnings and "outside what 8-bit JPEG codes" in str(exc), (path, exc)
                assert max(int(np.abs(p).max()) for p in image.components) > 1023
                continue
            assert same_coefficients(image, back) and back.progressive == progressive, (path, progressive)


@needs_data
def test_written_files_decode_in_pillow_torchvision_and_libjpeg_as_the_originals_do(tmp_path):
    """The same coefficients make the same pixels in the same decoder: Pillow's and
    torchvision's decodes of a rewritten file equal their decodes of the original."""
    images = readable("imagenet-sample")[::25] + [(p, i) for p, i in readable("jpeg-edge") if "dali-mixed" in str(p)]
    for k, (path, image) in enumerate(images):
        target = tmp_path / f"{k}.jpg"
        dctload.write_coefficients(image, target, progressive=k % 2 == 1)
        with Image.open(path) as original, Image.open(target) as written:
            assert np.array_equal(np.asarray(original.convert("RGB")), np.asarray(written.convert("RGB"))), path
        ours = torchvision.io.decode_jpeg(torchvision.io.read_file(str(target)))
        theirs = torchvision.io.decode_jpeg(torchvision.io.read_file(str(path)))
        assert torch.equal(ours, theirs), path
        y, *_ = oracle(target)[0]  # jpeglib (libjpeg-turbo 2.1)
        assert np.array_equal(y, image.y), path


def test_generated_images_round_trip_through_a_file_object_and_a_path(tmp_path):
    for channels, subsampling in ((3, 0), (3, 2), (3, 1), (1, 0)):
        data = encode(photo_like(37, 53, seed=channels + subsampling, channels=channels), quality=80,
                      **({"subsampling": subsampling} if channels == 3 else {}))
        image = dctload.read_coefficients(data)
        buffer = io.BytesIO()
        written = dctload.write_coefficients(image, buffer)
        assert buffer.getvalue() == written
        assert same_coefficients(image, dctload.read_coefficients(written))
        dctload.write_coefficients(image, tmp_path / "x.jpg")
        assert same_coefficients(image, dctload.read_coefficients(tmp_path / "x.jpg"))
        standard = dctload.write_coefficients(image, optimize=False)
        assert same_coefficients(image, dctload.read_coefficients(standard)) and len(standard) >= len(written)


def test_bad_arguments_raise_typed_errors_naming_the_problem():
    image = dctload.read_coefficients(encode(photo_like(32, 48), quality=75, subsampling=2))
    with pytest.raises(TypeError, match="DCTImage"):
        dctload.write_coefficients(image.y)
    with pytest.raises(TypeError, match="int16"):
        dctload.write_coefficients(dataclass_replace(image, y=image.y.astype(np.int32)))
    with pytest.raises(ValueError, match="component 0: expected C-contiguous int16 \\(4, 6, 64\\)"):
        dctload.write_coefficients(dataclass_replace(image, y=np.ascontiguousarray(image.y[:3])))
    with pytest.raises(ValueError, match="steps are 1..32767"):
        dctload.write_coefficients(dataclass_replace(image, qt=np.zeros_like(image.qt)))
    with pytest.raises(ValueError, match="sampling factors are 1..4"):
        dctload.write_coefficients(dataclass_replace(image, sampling=((5, 1), (1, 1), (1, 1))))
    with pytest.raises(ValueError, match="does not divide the largest"):
        dctload.write_coefficients(dataclass_replace(image, sampling=((3, 1), (2, 1), (1, 1))))
    with pytest.raises(ValueError, match="12 blocks an MCU"):
        dctload.write_coefficients(dataclass_replace(image, sampling=((2, 2), (2, 2), (2, 2))))
    for k, value in ((1, 1024), (0, 1024), (5, -1024), (0, -1025)):  # AC of 10 bits, DC -1024..1023
        huge = image.y.copy()
        huge[1, 2, k] = value
        for progressive, optimize in ((False, False), (False, True), (True, True)):
            with pytest.raises(ValueError, match=f"component 0: coefficient {k} of block 8 is {value}, outside"):
                dctload.write_coefficients(dataclass_replace(image, y=huge), progressive=progressive, optimize=optimize)
    edge = image.y.copy()
    edge[1, 2, 0], edge[1, 3, 0], edge[0, 0, 7] = -1024, 1023, -1023  # the extremes code, and read back
    assert np.array_equal(dctload.read_coefficients(dctload.write_coefficients(dataclass_replace(image, y=edge))).y, edge)


def dataclass_replace(image, **fields):
    import dataclasses

    return dataclasses.replace(image, **fields)


def test_requantize_rounds_as_an_encoder_and_keeps_the_own_tables_exactly():
    image = dctload.read_coefficients(encode(photo_like(48, 64, seed=3), quality=95, subsampling=2))
    same = dctload.requantize(image, image.qt)
    assert same_coefficients(image, same)
    # halves go away from zero, in integers: 3 x 10 / 20 = 1.5 -> 2, -1.5 -> -2, 0.45 -> 0
    plane = np.array([[[3, -3, 0] + [0] * 61]], np.int16)
    out = dctload.coefficients.requantize_plane(plane, np.full(64, 10), np.full(64, 20))
    assert out[0, 0, :3].tolist() == [2, -2, 0]
    assert dctload.coefficients.requantize_plane(np.full((1, 1, 64), 9, np.int16), np.full(64, 1), np.full(64, 20))[0, 0, 0] == 0
    coarse = dctload.requantize(image, 50)
    luma, chroma = dctload.coefficients.standard_tables(50)
    assert np.array_equal(coarse.qt[0], luma) and np.array_equal(coarse.qt[1], chroma) and np.array_equal(coarse.qt[2], chroma)
    assert dctload.requantize(coarse, coarse.qt).y.tolist() == coarse.y.tolist()  # idempotent


@needs_data
def test_requantized_files_match_pillows_pixel_route_at_the_same_quality():
    """ImageNet files finer than IJG quality 90, requantized to it in the DCT domain and
    written, against Pillow's decode and re-encode at quality 90 with the same subsampling:
    within 0.3 dB PSNR of the original's pixels (measured within 0.05 dB) at most 5% larger
    (measured -5% to +0.3%). A JPEG-DL style table, given as float tensors, works the same."""
    luma, chroma = dctload.coefficients.standard_tables(90)
    finer = [(p, i) for p, i in readable("imagenet-sample")
             if len(i.components) == 3 and (i.qt[0] <= luma).all() and (i.qt[1:] <= chroma).all()]
    assert len(finer) >= 10
    subsampling = {(1, 1): 0, (2, 1): 1, (2, 2): 2}
    for path, image in finer[:10]:
        ours = dctload.write_coefficients(dctload.requantize(image, 90))
        pillow = io.BytesIO()
        with Image.open(path) as original:
            reference = np.asarray(original.convert("RGB"), np.float64)
            original.convert("RGB").save(pillow, "JPEG", quality=90, subsampling=subsampling[image.sampling[0]])
        psnr = []
        for data in (ours, pillow.getvalue()):
            with Image.open(io.BytesIO(data)) as decoded:
                psnr.append(10 * np.log10(255 ** 2 / ((np.asarray(decoded.convert("RGB"), np.float64) - reference) ** 2).mean()))
        assert psnr[0] >= psnr[1] - 0.3 and len(ours) <= 1.05 * len(pillow.getvalue()), (path, psnr)
    learned = (torch.full((64,), 4.4), torch.full((64,), 7.6))
    steps = dctload.requantize(image, learned).qt
    assert steps[0].tolist() == [4] * 64 and steps[1].tolist() == steps[-1].tolist() == [8] * 64
    with pytest.raises(ValueError, match="a quality, \\(luma, chroma\\)"):
        dctload.requantize(image, [np.ones(63)])
    with pytest.raises(ValueError, match="overflow int16"):
        dctload.coefficients.requantize_plane(np.full((1, 1, 64), 30000, np.int16), np.full(64, 2), np.ones(64))

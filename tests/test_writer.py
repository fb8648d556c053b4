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
    8-bit JPEG can code (hopper_bad_exif.jpg: a DC of 2945) is refused with a JPEGError."""
    images = readable(folder)
    assert len(images) >= (490 if folder == "imagenet-sample" else 40)
    for path, image in images:
        for progressive in (False, True):
            try:
                back = dctload.read_coefficients(dctload.write_coefficients(image, progressive=progressive))
            except dctload.JPEGError as exc:
                assert image.warnings and "out of range" in str(exc), (path, exc)
                assert max(int(np.abs(p).max()) for p in image.components) > 2047
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
    huge = image.y.copy()
    huge[0, 0, 1] = 30000  # beyond baseline JPEG's 10-bit AC range: libjpeg refuses to code it
    with pytest.raises(dctload.JPEGError):
        dctload.write_coefficients(dataclass_replace(image, y=huge))


def dataclass_replace(image, **fields):
    import dataclasses

    return dataclasses.replace(image, **fields)

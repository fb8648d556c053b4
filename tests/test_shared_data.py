"""The real files of ../shared/data: bit-exact against jpeglib, and every edge case's outcome."""

from __future__ import annotations

import ast

import numpy as np
import pytest

import dctload
from conftest import SHARED_DATA, assert_matches_oracle, manifest, shared_path

IMAGENET = manifest("imagenet-sample/MANIFEST.tsv")
EDGE = manifest("jpeg-edge/MANIFEST.tsv")
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")

# Files whose data libjpeg flags as corrupt (extraneous bytes before a marker, or a
# truncated scan): read, with warnings recorded. Found by reading them; libjpeg and
# Pillow agree that each decodes.
WARNS = {
    "jpeg-edge/pillow/hopper_bad_exif.jpg",
    "jpeg-edge/pillow/jpeg_ff00_header.jpg",
    "jpeg-edge/pillow/junk_jpeg_header.jpg",
    "jpeg-edge/pillow/photoshop-200dpi-broken.jpg",
    "jpeg-edge/pillow/truncated_app14.jpg",
    "jpeg-edge/pillow/truncated_jpeg.jpg",
    "jpeg-edge/pillow/ultrahdr.jpg",
}


def expected_outcome(row: dict) -> str:
    """'ok', 'warn', or the UnsupportedJPEGError code, from the manifest's properties."""
    if row["lossless"] == "True":
        return "lossless"
    if row["precision"] != "8":
        return "precision"
    if row["colorspace"] in ("YCCK", "CMYK", "RGB"):
        return "colorspace"
    if row["eoi"] == "False" or row["path"] in WARNS:
        return "warn"
    return "ok"


def sampling_of(row: dict, image) -> str:
    """The manifest's sampling notation for what the reader found."""
    factors = image.sampling
    if len(factors) == 1:
        return "gray"
    names = {((1, 1),) * 3: "4:4:4", ((2, 1), (1, 1), (1, 1)): "4:2:2", ((2, 2), (1, 1), (1, 1)): "4:2:0",
             ((1, 2), (1, 1), (1, 1)): "4:4:0", ((4, 1), (1, 1), (1, 1)): "4:1:1", ((4, 2), (1, 1), (1, 1)): "4:1:0"}
    return names.get(tuple(factors), "other:" + ",".join(f"{h}x{v}" for h, v in factors))


@needs_data
@pytest.mark.parametrize("row", IMAGENET, ids=[r["path"] for r in IMAGENET])
def test_imagenet_sample_matches_jpeglib(row):
    path = shared_path(row["path"])
    image = dctload.read_coefficients(path)
    assert_matches_oracle(image, path)
    assert (image.width, image.height) == (int(row["width"]), int(row["height"]))
    assert sampling_of(row, image) == row["sampling"]
    assert image.colorspace == {"YCbCr": "YCbCr", "gray": "gray"}[row["colorspace"]]
    assert image.warnings == ()


@needs_data
@pytest.mark.parametrize("row", EDGE, ids=[r["path"] for r in EDGE])
def test_edge_case_outcome(row):
    path = shared_path(row["path"])
    outcome = expected_outcome(row)
    if outcome in ("ok", "warn"):
        image = dctload.read_coefficients(path)
        assert_matches_oracle(image, path)
        assert bool(image.warnings) == (outcome == "warn"), image.warnings
        assert (image.width, image.height) == (int(row["width"]), int(row["height"]))
        assert sampling_of(row, image) == row["sampling"]
        assert image.progressive == (row["progressive"] == "True")
        assert image.orientation == ast.literal_eval(row["orientation"])
        header = dctload.read_header(path)
        assert header["arithmetic"] == (row["arithmetic"] == "True")
        assert header["restart_interval"] == int(row["dri"])
        if outcome == "warn":
            with pytest.raises(dctload.JPEGError) as info:
                dctload.read_coefficients(path, strict=True)
            assert info.value.code == "strict" and str(path) in str(info.value)
    else:
        with pytest.raises(dctload.UnsupportedJPEGError) as info:
            dctload.read_coefficients(path)
        assert info.value.code == outcome
        assert str(path) in str(info.value)


@needs_data
def test_png_named_jpeg_is_refused_by_name():
    path = shared_path("jpeg-edge/misnamed/png_named_as.JPEG")
    with pytest.raises(dctload.UnsupportedJPEGError, match="Not a JPEG file") as info:
        dctload.read_coefficients(path)
    assert info.value.code == "not_jpeg" and info.value.source == str(path)


@needs_data
def test_every_edge_file_is_covered():
    """A file added to jpeg-edge/ without a manifest row would escape the tests above."""
    listed = {r["path"] for r in EDGE} | {"jpeg-edge/misnamed/png_named_as.JPEG"}
    on_disk = {str(p.relative_to(SHARED_DATA)) for p in (SHARED_DATA / "jpeg-edge").rglob("*")
               if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".mpo", ".png")}
    assert on_disk <= listed


@needs_data
@pytest.mark.parametrize("name", ["pil_sample_cmyk.jpg"])
def test_ycck_fallback_matches_pillow(name):
    """YCCK -> CMYK (libjpeg) -> RGB -> YCbCr coefficients, against Pillow's own conversion."""
    from PIL import Image

    path = shared_path(f"jpeg-edge/pillow/{name}")
    image = dctload.read_coefficients(path, fallback="pixels")
    assert image.from_pixels and image.colorspace == "YCCK"
    assert image.sampling == ((1, 1),) * 3 and (image.qt == 1).all()
    assert image.orientation == 1  # the file's EXIF survives the fallback
    reference = np.asarray(Image.open(path).convert("RGB").convert("YCbCr"), dtype=np.float64)
    from dctload.coefficients import blockwise_idct

    for c, coefs in enumerate(image.components):
        plane = blockwise_idct(coefs.astype(np.float64))[: image.height, : image.width] + 128
        error = np.abs(plane - reference[..., c])
        # Pillow rounds its RGB and YCbCr to integers; we round coefficients.
        assert error.mean() < 1.0 and error.max() < 4.0, (c, error.mean(), error.max())

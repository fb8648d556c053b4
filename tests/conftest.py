"""Shared fixtures: the real test files in ../shared/data and Pillow-encoded images."""

from __future__ import annotations

import csv
import io
import pathlib

import numpy as np
import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
SKIP_REASON = f"{SHARED_DATA} is absent: the real-JPEG test bench lives beside the repository in CI"


def shared_path(relative: str) -> pathlib.Path:
    """A file of ../shared/data; skips the test where that folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(SKIP_REASON)
    return SHARED_DATA / relative


def manifest(relative: str) -> list[dict]:
    """Rows of a MANIFEST.tsv under ../shared/data ([] where the folder is absent)."""
    path = SHARED_DATA / relative
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def oracle(path) -> list[np.ndarray]:
    """jpeglib's coefficients per component, as (h_blocks, w_blocks, 64) arrays, and its tables."""
    import jpeglib

    # libjpeg-turbo 2.1 inside jpeglib: its default (IJG 6b) refuses arithmetic coding.
    jpeglib.version.set("turbo210")
    ref = jpeglib.read_dct(str(path))
    components = [ref.Y] + ([ref.Cb, ref.Cr] if ref.has_chrominance else [])
    arrays = [a.reshape(a.shape[0], a.shape[1], 64) for a in components]
    tables = [ref.qt[ref.quant_tbl_no[c]].reshape(64) for c in range(len(components))]
    return arrays, tables


def encode(pixels: np.ndarray, **options) -> bytes:
    """Pillow-encoded JPEG bytes of an (H, W) or (H, W, 3) uint8 array."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", **options)
    return out.getvalue()


def photo_like(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, not like white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = [128 + 100 * np.sin(x / (7 + 3 * c) + y / (11 + c)) for c in range(channels)]
    image = np.stack(base, axis=-1) + rng.normal(0, 12, (height, width, channels))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


def assert_matches_oracle(image, path) -> None:
    arrays, tables = oracle(path)
    assert len(image.components) == len(arrays)
    for name, ours, theirs, qt, table in zip("y cb cr".split(), image.components, arrays, image.qt, tables):
        assert ours.shape == theirs.shape, name
        np.testing.assert_array_equal(ours, theirs, err_msg=f"{path}: {name} coefficients")
        np.testing.assert_array_equal(qt, table, err_msg=f"{path}: {name} table")

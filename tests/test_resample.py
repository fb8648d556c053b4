"""Exact DCT-domain crop + resize + flip (dctload.coefficients.resample_blocks)."""

from __future__ import annotations

import numpy as np
import pytest

import dctload
from conftest import SHARED_DATA, encode, photo_like
from dctload.coefficients import blockwise_dct, blockwise_idct, resample_blocks, resize_matrix


def pixel_reference(coefs, box, out_size, flip):
    """Inverse DCT -> crop and resize with the same filter -> flip -> forward DCT, in float64."""
    plane = blockwise_idct(coefs.astype(np.float64))
    top, left, height, width = box
    rows = resize_matrix(top, height, out_size[0], plane.shape[0])
    cols = resize_matrix(left, width, out_size[1], plane.shape[1])
    out = rows @ plane @ cols.T
    return blockwise_dct(out[:, ::-1] if flip else out)


@pytest.mark.parametrize("box,out_size", [
    ((0, 0, 5, 9), (8, 16)),          # upscale
    ((3, 7, 40, 33), (16, 24)),       # downscale
    ((10, 0, 30, 64), (32, 8)),       # box touching the left and right borders
    ((0, 0, 64, 64), (224, 40)),      # whole signal, up one axis and down the other
])
def test_weights_match_torch_antialiased_bilinear(box, out_size):
    """torch resizes whole-pixel crops only; fractional boxes follow the same formula."""
    import torch
    import torch.nn.functional as F

    top, left, height, width = box
    signal = torch.rand(1, 1, 64, 64, dtype=torch.float64)
    crop = signal[..., int(top): int(top + height), int(left): int(left + width)]
    expected = F.interpolate(crop, size=out_size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    rows = resize_matrix(top, height, out_size[0], 64)
    cols = resize_matrix(left, width, out_size[1], 64)
    ours = rows @ signal[0, 0].numpy() @ cols.T
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("box,out_size", [
    ((0, 0, 5, 9), (8, 16)),
    ((3, 7, 40, 33), (16, 24)),
    ((10, 0, 30, 61), (32, 8)),
    ((22.5, 3.5, 9.0, 17.5), (8, 8)),
    ((0, 0, 47, 61), (224, 224)),     # whole image, upscaled
])
@pytest.mark.parametrize("flip", [False, True])
def test_resample_equals_the_pixel_domain_chain(box, out_size, flip):
    image = dctload.read_coefficients(encode(photo_like(47, 61), quality=90, subsampling=0))
    coefs = image.dequantize(np.float64)[0]
    ours = resample_blocks(coefs, box, out_size, flip)
    reference = pixel_reference(coefs, box, out_size, flip)
    scale = np.abs(reference).max()
    assert np.abs(ours - reference).max() < 1e-9 * scale
    ours32 = resample_blocks(image.dequantize(np.float32)[0], box, out_size, flip)
    assert np.abs(ours32 - reference).max() < 1e-5 * scale  # float32 rounding only


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
@pytest.mark.parametrize("name", ["420-odd-both.jpg", "411-non-multiple-4-width.jpg", "440.jpg", "2x4.jpg"])
def test_random_boxes_on_real_subsamplings(name):
    image = dctload.read_coefficients(SHARED_DATA / "jpeg-edge" / "dali-mixed" / name)
    rng = np.random.default_rng(0)
    h_max = max(h for h, _ in image.sampling)
    v_max = max(v for _, v in image.sampling)
    for _ in range(3):
        height, width = (int(rng.integers(8, image.height // 2)), int(rng.integers(8, image.width // 2)))
        top, left = int(rng.integers(0, image.height - height + 1)), int(rng.integers(0, image.width - width + 1))
        flip = bool(rng.integers(0, 2))
        for c, (coefs, (h, v)) in enumerate(zip(image.dequantize(np.float64), image.sampling)):
            box = (top * v / v_max, left * h / h_max, height * v / v_max, width * h / h_max)
            out = (56, 56) if c == 0 else (32, 32)
            ours = resample_blocks(coefs, box, out, flip)
            reference = pixel_reference(coefs, box, out, flip)
            assert np.abs(ours - reference).max() < 1e-9 * np.abs(reference).max(), (name, c, box)

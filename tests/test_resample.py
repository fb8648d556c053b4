"""Exact DCT-domain crop + resize + flip (dctload.coefficients.resample)."""

from __future__ import annotations

import numpy as np
import pytest

import dctload
from conftest import SHARED_DATA, encode, photo_like
from dctload.coefficients import AxisMap, blockwise_dct, blockwise_idct, resample, resize_matrix


def box_axis(start, length, out, flip=False):
    """A crop [start, start + length) resized to ``out`` samples."""
    return AxisMap(start, length / out, out, start, start + length, flip)


def pixel_reference(coefs, rows, cols):
    """Inverse DCT -> crop and resize with the same filter -> flip -> forward DCT, in float64."""
    plane = blockwise_idct(coefs.astype(np.float64))
    out = resize_matrix(rows, plane.shape[0]) @ plane @ resize_matrix(cols, plane.shape[1]).T
    return blockwise_dct(out).transpose(2, 0, 1)


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
    crop = signal[..., top: top + height, left: left + width]
    expected = F.interpolate(crop, size=out_size, mode="bilinear", antialias=True, align_corners=False)[0, 0]
    rows = resize_matrix(box_axis(top, height, out_size[0]), 64)
    cols = resize_matrix(box_axis(left, width, out_size[1]), 64)
    np.testing.assert_allclose(rows @ signal[0, 0].numpy() @ cols.T, expected.numpy(), atol=1e-6)


#: (top, left, height, width) boxes of a 47 x 61 image and output sizes, for the exactness tests.
BOXES = [
    ((0, 0, 5, 9), (8, 16)),
    ((3, 7, 40, 33), (16, 24)),
    ((10, 0, 30, 61), (32, 8)),
    ((22.5, 3.5, 9.0, 17.5), (8, 8)),
    ((0, 0, 47, 61), (224, 224)),     # whole image, upscaled
]


def chain_case(box, out_size, flip):
    """(image, rows, cols, the float64 pixel-domain chain's luma) for one box of the test photo."""
    image = dctload.read_coefficients(encode(photo_like(47, 61), quality=90, subsampling=0))
    top, left, height, width = box
    rows, cols = box_axis(top, height, out_size[0]), box_axis(left, width, out_size[1], flip)
    return image, rows, cols, pixel_reference(image.dequantize(np.float64)[0], rows, cols)


@pytest.mark.parametrize("box,out_size", BOXES)
@pytest.mark.parametrize("flip", [False, True])
def test_resample_equals_the_pixel_domain_chain(box, out_size, flip):
    image, rows, cols, reference = chain_case(box, out_size, flip)
    ours = resample([image.y], image.qt[:1], rows, cols)[0]
    assert ours.dtype == np.float32 and ours.shape == reference.shape
    assert np.abs(ours - reference).max() < 2e-6 * np.abs(reference).max()  # float32 rounding only


def test_flip_is_block_reversal_with_odd_horizontal_frequencies_negated():
    image = dctload.read_coefficients(encode(photo_like(48, 64), quality=90, subsampling=0))
    rows, cols = AxisMap.identity(48), AxisMap.identity(64)
    plain = resample([image.y], image.qt[:1], rows, cols)[0].reshape(8, 8, 6, 8)
    flipped = resample([image.y], image.qt[:1], rows, AxisMap(0, 1, 64, 0, 64, flip=True))[0].reshape(8, 8, 6, 8)
    sign = (-1.0) ** np.arange(8)
    np.testing.assert_allclose(flipped, plain[:, :, :, ::-1] * sign[None, :, None, None], atol=1e-3)
    np.testing.assert_allclose(plain.reshape(64, 6, 8).transpose(1, 2, 0),
                               image.dequantize()[0], atol=1e-3)  # the identity map is exact


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
@pytest.mark.parametrize("name", ["420-odd-both.jpg", "411-non-multiple-4-width.jpg", "440.jpg", "2x4.jpg", "410.jpg"])
def test_random_boxes_on_real_subsamplings(name):
    """Each component from its own resolution, fractional boxes included, against the chain."""
    image = dctload.read_coefficients(SHARED_DATA / "jpeg-edge" / "dali-mixed" / name)
    rng = np.random.default_rng(0)
    h_max = max(h for h, _ in image.sampling)
    v_max = max(v for _, v in image.sampling)
    for _ in range(3):
        height, width = int(rng.integers(8, image.height // 2)), int(rng.integers(8, image.width // 2))
        top, left = int(rng.integers(0, image.height - height + 1)), int(rng.integers(0, image.width - width + 1))
        luma_rows, luma_cols = box_axis(top, height, 64), box_axis(left, width, 64, bool(rng.integers(0, 2)))
        for c, (coefs, (h, v)) in enumerate(zip(image.components, image.sampling)):
            rows = luma_rows if c == 0 else luma_rows.subsampled(v_max / v, 32)
            cols = luma_cols if c == 0 else luma_cols.subsampled(h_max / h, 32)
            ours = resample([coefs], image.qt[c:c + 1], rows, cols)[0]
            reference = pixel_reference(image.dequantize(np.float64)[c], rows, cols)
            assert np.abs(ours - reference).max() < 2e-6 * np.abs(reference).max(), (name, c, rows, cols)

"""Torch blockwise DCT and colour conversion against the numpy reference of dctload.coefficients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dctload import coefficients, pixels


def test_blockwise_dct_matches_numpy_and_inverts():
    planes = np.random.default_rng(0).uniform(0, 255, (2, 24, 40))
    ours = pixels.to_coefficients(torch.from_numpy(planes))
    for plane, coefs in zip(planes, ours):
        reference = coefficients.blockwise_dct(plane - coefficients.LEVEL_SHIFT)  # (hb, wb, 64)
        np.testing.assert_allclose(coefs.permute(1, 2, 0).numpy(), reference, atol=1e-9)
    np.testing.assert_allclose(pixels.from_coefficients(ours).numpy(), planes, atol=1e-9)
    assert ours[0, 0, 0, 0] == pytest.approx(8 * (planes[0, :8, :8].mean() - 128))  # DC = 8 x mean


def test_ycbcr_conversion_matches_numpy_and_inverts():
    rgb = np.random.default_rng(1).uniform(0, 255, (5, 7, 3))
    ours = pixels.rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1))
    np.testing.assert_allclose(ours.permute(1, 2, 0).numpy(), coefficients.rgb_to_ycbcr(rgb), atol=1e-9)
    np.testing.assert_allclose(pixels.ycbcr_to_rgb(ours).permute(1, 2, 0).numpy(), rgb, atol=1e-9)


def test_float32_and_batched_layouts():
    x = torch.rand(3, 2, 16, 8) * 255
    coefs = pixels.to_coefficients(x)
    assert coefs.shape == (3, 2, 64, 2, 1) and coefs.dtype == torch.float32
    torch.testing.assert_close(pixels.from_coefficients(coefs), x, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="8x8"):
        pixels.blockwise_dct(torch.zeros(10, 16))

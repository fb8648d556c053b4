"""The blockwise DCT and colour conversion of dctload.coefficients, on numpy and torch,
against their textbook formulas, and the batch contract's layout (dctload.pixels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dctload import coefficients, pixels


def dct_by_formula(block: np.ndarray) -> np.ndarray:
    """The orthonormal 8x8 DCT-II, summed term by term (T.81, A.3.3)."""
    out = np.zeros((8, 8))
    for v in range(8):
        for u in range(8):
            cv, cu = (math.sqrt(0.5) if v == 0 else 1.0), (math.sqrt(0.5) if u == 0 else 1.0)
            out[v, u] = 0.25 * cv * cu * sum(block[y, x] * math.cos((2 * y + 1) * v * math.pi / 16)
                                             * math.cos((2 * x + 1) * u * math.pi / 16)
                                             for y in range(8) for x in range(8))
    return out


def test_blockwise_dct_is_the_formula_on_numpy_and_torch_and_inverts():
    planes = np.random.default_rng(0).uniform(0, 255, (2, 24, 40))
    ours = coefficients.blockwise_dct(planes)  # (2, 3, 5, 64): the reader's block layout
    np.testing.assert_allclose(ours[1, 2, 3].reshape(8, 8), dct_by_formula(planes[1, 16:24, 24:32]), atol=1e-9)
    on_torch = coefficients.blockwise_dct(torch.from_numpy(planes))
    np.testing.assert_allclose(on_torch.numpy(), ours, atol=1e-9)
    np.testing.assert_allclose(coefficients.blockwise_idct(ours), planes, atol=1e-9)
    contract = pixels.to_coefficients(torch.from_numpy(planes))  # (2, 64, 3, 5), of samples - 128
    np.testing.assert_allclose(contract.permute(0, 2, 3, 1).numpy(), coefficients.blockwise_dct(planes - 128), atol=1e-9)
    np.testing.assert_allclose(pixels.from_coefficients(contract).numpy(), planes, atol=1e-9)
    assert contract[0, 0, 0, 0] == pytest.approx(8 * (planes[0, :8, :8].mean() - 128))  # DC = 8 x mean


def test_ycbcr_conversion_is_jfif_on_any_axis_and_inverts():
    rgb = np.random.default_rng(1).uniform(0, 255, (5, 7, 3))
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    jfif = np.stack([0.299 * r + 0.587 * g + 0.114 * b,
                     128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                     128 + 0.5 * r - 0.418688 * g - 0.081312 * b], axis=-1)
    np.testing.assert_allclose(coefficients.rgb_to_ycbcr(rgb), jfif, atol=1e-3)
    channels_first = coefficients.rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1), axis=-3)
    np.testing.assert_allclose(channels_first.permute(1, 2, 0).numpy(), coefficients.rgb_to_ycbcr(rgb), atol=1e-9)
    np.testing.assert_allclose(coefficients.ycbcr_to_rgb(coefficients.rgb_to_ycbcr(rgb)), rgb, atol=1e-9)


def test_float32_and_batched_layouts():
    x = torch.rand(3, 2, 16, 8) * 255
    coefs = pixels.to_coefficients(x)
    assert coefs.shape == (3, 2, 64, 2, 1) and coefs.dtype == torch.float32
    torch.testing.assert_close(pixels.from_coefficients(coefs), x, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="8x8"):
        coefficients.blockwise_dct(torch.zeros(10, 16))

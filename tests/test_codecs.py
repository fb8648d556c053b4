"""Learned codecs in nets: GDN, Balle et al. 2017 with real entropy coding, ComCNN/RecCNN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import encode, photo_like
from nets import balle2017, codecs, comcnn
from nets.gdn import GDN

pytest.importorskip("constriction")


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_gradients_match_finite_differences(inverse):
    torch.manual_seed(0)
    layer = GDN(4, inverse=inverse).double()
    with torch.no_grad():
        layer.gamma.add_(0.05 * torch.rand(4, 4, dtype=torch.float64))
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    beta, gamma = (p.detach().clone().requires_grad_() for p in (layer.beta, layer.gamma))

    def gdn(x, beta, gamma):
        return torch.func.functional_call(layer, {"beta": beta, "gamma": gamma}, (x,))
    assert torch.autograd.gradcheck(gdn, (x, beta, gamma))


def test_gdn_divides_and_its_inverse_multiplies_by_the_same_norm():
    layer, inverse = GDN(3), GDN(3, inverse=True)
    x = torch.randn(1, 3, 4, 4)
    norm = torch.sqrt(1 + 0.1 * x ** 2)  # beta = 1, gamma = 0.1 I at initialization
    assert torch.allclose(layer(x), x / norm, atol=1e-5) and torch.allclose(inverse(x), x * norm, atol=1e-5)


def test_gdn_parameters_stay_positive_under_gradients_that_push_them_down():
    layer = GDN(2)
    optimizer = torch.optim.SGD(layer.parameters(), lr=10.0)
    for _ in range(5):
        optimizer.zero_grad()
        (layer.beta_reparam(layer.beta).sum() + layer.gamma_reparam(layer.gamma).sum()).backward()
        optimizer.step()
    assert (layer.beta_reparam(layer.beta) >= 1e-6 - 1e-9).all() and (layer.gamma_reparam(layer.gamma) >= 0).all()


def photo_batch(n: int = 4, size: int = 64) -> torch.Tensor:
    return torch.stack([torch.from_numpy(photo_like(size, size, seed=s)).permute(2, 0, 1) for s in range(n)]).float() / 255


def trained_tiny_model(steps: int = 40) -> tuple[balle2017.Balle2017, list[float]]:
    torch.manual_seed(0)
    model = balle2017.Balle2017(channels=16)
    x = photo_batch()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = balle2017.rate_distortion_loss(model(x), x, lmbda=0.01)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def test_training_lowers_the_rate_distortion_loss():
    _, losses = trained_tiny_model()
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def test_coded_bytes_decode_to_the_same_reconstruction_and_match_the_estimate():
    """The range coder's length is within 1% (+ 64 bits) of the entropy model's estimate
    on the same rounded latents, and the decoder rebuilds the encoder's image exactly."""
    model, _ = trained_tiny_model(20)
    model.entropy.update()
    x = photo_batch(1, 80)
    data = model.compress(x)
    decoded = model.decompress(data)
    with torch.no_grad():
        y = model.entropy.clamp(torch.round(model.analysis(model._pad(x))))
        expected = model.synthesis(y)[..., :80, :80].clamp(0, 1)
        estimate = float(-torch.log2(model.entropy.likelihood(y)).sum())
    assert decoded.shape == (1, 3, 80, 80) and torch.equal(decoded, expected)
    coded = 8 * (len(data) - 4)  # less the size header
    assert abs(coded - estimate) <= 0.01 * estimate + 64, (coded, estimate)


def test_symbols_beyond_a_channels_table_are_clamped_consistently():
    model = balle2017.FactorizedEntropyModel(2)
    model.update()
    symbols = np.array([[[0, 5000]], [[-7000, 1]]], dtype=np.int64)
    decoded = model.decompress(model.compress(symbols), (1, 2))
    assert np.array_equal(decoded, model.clamp(torch.from_numpy(symbols)).numpy())
    with pytest.raises(RuntimeError, match="update"):
        balle2017.FactorizedEntropyModel(2).compress(symbols)


def test_comcnn_recnn_train_through_the_jpeg_layer_and_decode_real_files():
    torch.manual_seed(0)
    model = comcnn.CompressionFramework(quality=15, depth=4, width=16)
    x = photo_batch(4, 48)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert model.com.body[0].weight.grad.abs().sum() > 0  # the codec passes gradients to ComCNN
    model.eval()
    data = model.encode(x[:1])
    assert data[:2] == b"\xff\xd8"  # a real JPEG of the compact image
    out = model.decode(data, (48, 48))
    assert out.shape == (1, 3, 48, 48) and 0 <= out.min() and out.max() <= 1


def test_the_command_writes_the_rate_distortion_json_and_plot(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.jpg").write_bytes(encode(photo_like(270, 300, seed=i), quality=95))
    out = tmp_path / "run"
    assert codecs.main([str(folder), "--out", str(out), "--minutes", "0.02", "--lmbdas", "0.01",
                        "--qualities", "15", "--channels", "8", "--rec-depth", "3", "--crop", "64",
                        "--batch", "2", "--hold-out", "2"]) == 0
    result = json.loads((out / "rd.json").read_text())
    assert result["held_out_images"] == 2 and result["training_files"] == 2
    assert [p["quality"] for p in result["jpeg"]["jpeg_420"]] == list(codecs.JPEG_QUALITIES)
    balle, com = result["balle2017"][0], result["comcnn"][0]
    assert balle["eval"]["bpp"] > 0 and balle["train"]["steps"] >= 1 and 0 < balle["eval"]["ms_ssim"] <= 1
    assert com["eval"]["psnr_db"] > 10 and "gain_over_jpeg_420_db" in com["eval"]
    assert (out / "rd.png").read_bytes().startswith(b"\x89PNG")


def test_comparisons_at_the_same_rate_and_below_jpegs_lowest():
    curve = [{"bpp": 0.25, "psnr_db": 20.0}, {"bpp": 0.5, "psnr_db": 25.0}]
    inside = codecs.against({"bpp": 0.3, "psnr_db": 23.0}, curve, "jpeg")
    assert inside == {"jpeg_psnr_at_same_bpp": pytest.approx(21.0), "gain_over_jpeg_db": pytest.approx(2.0),
                      "jpeg_below_lowest_rate": False}
    below = codecs.against({"bpp": 0.2, "psnr_db": 22.0}, curve, "jpeg")
    assert below["jpeg_below_lowest_rate"] and below["gain_over_jpeg_db"] == pytest.approx(2.0)
    above = codecs.against({"bpp": 0.9, "psnr_db": 30.0}, curve, "jpeg")
    assert above["gain_over_jpeg_db"] is None and not above["jpeg_below_lowest_rate"]

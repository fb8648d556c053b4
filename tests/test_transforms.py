"""DCT-domain transforms against torchvision's pixel pipelines on the decoded float planes.

Bound: every output coefficient within 2e-6 of the largest coefficient of its plane
(float32 rounding; the pixel reference runs in float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as tvT
import torchvision.transforms.functional as tvF

import dctload
import dctload.transforms as T
from conftest import SHARED_DATA, encode, photo_like
from dctload.coefficients import blockwise_dct, blockwise_idct, resize_matrix

BOUND = 2e-6


def planes(image):
    """The decoded float64 planes (level-shifted samples, no rounding or clamping)."""
    out = []
    for coefs, (h, v) in zip(image.dequantize(np.float64), image.sampling):
        h_max = max(s[0] for s in image.sampling)
        v_max = max(s[1] for s in image.sampling)
        height, width = -(-image.height * v // v_max), -(-image.width * h // h_max)
        out.append(blockwise_idct(coefs)[:height, :width])
    return out


def dct_of(plane) -> np.ndarray:
    return blockwise_dct(np.ascontiguousarray(plane)).transpose(2, 0, 1)


def assert_close(ours, reference, what=""):
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else ours
    error = np.abs(ours - reference).max()
    assert error <= BOUND * np.abs(reference).max(), f"{what}: max error {error}"


def sample_files():
    if not SHARED_DATA.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_DATA} is absent"))]
    imagenet = sorted((SHARED_DATA / "imagenet-sample").glob("*.JPEG"))
    mixed = sorted((SHARED_DATA / "jpeg-edge" / "dali-mixed").glob("*.jpg"))
    return mixed + imagenet[::50]


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_train_recipe_matches_torchvision_with_the_same_random_stream(path):
    """Same seed: our RandomResizedCrop + flip draws torchvision's box and flip, and the
    luma equals torchvision's resized_crop (antialiased) + hflip of the decoded plane."""
    image = dctload.read_coefficients(path)
    luma = torch.from_numpy(planes(image)[0])[None]
    for seed in range(4):
        torch.manual_seed(seed)
        y, cbcr = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])(image)
        torch.manual_seed(seed)
        reference = tvT.Compose([tvT.RandomResizedCrop(224, antialias=True), tvT.RandomHorizontalFlip()])(luma)
        assert y.shape == (64, 28, 28) and cbcr.shape == (128, 14, 14)
        assert_close(y, dct_of(reference[0].numpy()), f"{path.name} seed {seed}")


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_chroma_is_resampled_from_its_own_resolution(path):
    """Cb and Cr against the same crop on each chroma plane (its own sample grid,
    centred siting), resized straight to S/2."""
    image = dctload.read_coefficients(path)
    rng = np.random.default_rng(1)
    h_max = max(s[0] for s in image.sampling)
    v_max = max(s[1] for s in image.sampling)
    for _ in range(3):
        height, width = int(rng.integers(16, image.height)), int(rng.integers(16, image.width))
        top, left = int(rng.integers(0, image.height - height + 1)), int(rng.integers(0, image.width - width + 1))
        flip = bool(rng.integers(0, 2))
        view = T.F.resized_crop(image, top, left, height, width, (64, 96))
        y, cbcr = T.F.to_tensor(T.F.hflip(view) if flip else view)
        for slot, (plane, (h, v)) in enumerate(zip(planes(image)[1:], image.sampling[1:])):
            rows = view.rows.subsampled(v_max / v, 32)
            cols = view.cols.subsampled(h_max / h, 48)
            out = resize_matrix(rows, plane.shape[0]) @ plane @ resize_matrix(cols, plane.shape[1]).T
            if flip:
                out = out[:, ::-1]
            assert_close(cbcr[64 * slot: 64 * slot + 64], dct_of(out), f"{path.name} chroma {slot}")
            if (h, v) == (h_max, v_max):  # 4:4:4: an integer box, so torchvision itself is the reference
                tv = tvF.resized_crop(torch.from_numpy(plane)[None], top, left, height, width, [32, 48], antialias=True)
                tv = tvF.hflip(tv) if flip else tv
                assert_close(cbcr[64 * slot: 64 * slot + 64], dct_of(tv[0].numpy()), f"{path.name} tv chroma")


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: getattr(p, "name", "absent"))
def test_validation_recipe_matches_torchvision(path):
    """Resize(256) then CenterCrop(224): the crop selects outputs of the whole-image resize."""
    image = dctload.read_coefficients(path)
    y, cbcr = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(image)
    luma = torch.from_numpy(planes(image)[0])[None]
    reference = tvT.Compose([tvT.Resize(256, antialias=True), tvT.CenterCrop(224)])(luma)
    assert_close(y, dct_of(reference[0].numpy()), path.name)
    assert cbcr.shape == (128, 14, 14)


def test_crop_after_flip_and_resize_compose_like_torchvision():
    image = dctload.read_coefficients(encode(photo_like(61, 83), quality=92, subsampling=0))
    luma = torch.from_numpy(planes(image)[0])[None]
    ours = T.F.crop(T.F.hflip(T.F.resize(T.F.crop(image, 3, 5, 50, 70), (40, 72))), 4, 8, 32, 48)
    reference = tvF.crop(tvF.hflip(tvF.resize(tvF.crop(luma, 3, 5, 50, 70), [40, 72], antialias=True)), 4, 8, 32, 48)
    assert_close(T.F.to_tensor(ours)[0], dct_of(reference[0].numpy()))


def test_partial_edge_blocks_and_boxes_touching_every_border():
    image = dctload.read_coefficients(encode(photo_like(45, 59), quality=90, subsampling=2))  # 4:2:0, partial MCUs
    luma = torch.from_numpy(planes(image)[0])[None]
    for top, left, height, width in [(0, 0, 45, 59), (29, 43, 16, 16), (0, 40, 45, 19), (37, 0, 8, 59)]:
        for flip in (False, True):
            view = T.F.resized_crop(image, top, left, height, width, (32, 48))
            y, _ = T.F.to_tensor(T.F.hflip(view) if flip else view)
            reference = tvF.resized_crop(luma, top, left, height, width, [32, 48], antialias=True)
            reference = tvF.hflip(reference) if flip else reference
            assert_close(y, dct_of(reference[0].numpy()), f"box {(top, left, height, width)} flip {flip}")


def test_grayscale_has_neutral_chroma():
    image = dctload.read_coefficients(encode(photo_like(40, 50, channels=1), quality=90))
    y, cbcr = T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])(image)
    assert y.abs().max() > 0 and cbcr.shape == (128, 2, 2) and not cbcr.any()


def test_geometry_errors_are_clear():
    image = dctload.read_coefficients(encode(photo_like(40, 50), quality=90))
    with pytest.raises(ValueError, match="outside"):
        T.F.crop(image, 30, 0, 16, 16)
    with pytest.raises(ValueError, match="already resized"):
        T.F.resize(T.F.resize(image, 32), 16)
    with pytest.raises(ValueError, match="multiple of 16"):
        T.F.to_tensor(T.F.resize(image, 40))
    with pytest.raises(TypeError, match="DCTImage"):
        T.F.hflip(torch.zeros(3, 8, 8))


def test_normalize_and_channel_subsets():
    image = dctload.read_coefficients(encode(photo_like(64, 64), quality=90))
    y, cbcr = T.ToTensor()(T.CenterCrop(64)(image))
    mean = (torch.arange(64.0), torch.arange(128.0))
    std = (torch.full((64,), 2.0), torch.full((128,), 4.0))
    ny, ncbcr = T.Normalize(mean, std)((y, cbcr))
    torch.testing.assert_close(ny, (y - mean[0][:, None, None]) / 2.0)
    torch.testing.assert_close(ncbcr, (cbcr - mean[1][:, None, None]) / 4.0)
    sy, scbcr = T.SelectChannels("dctnet24")((ny, ncbcr))
    assert sy.shape[0] == 16 and scbcr.shape[0] == 8
    torch.testing.assert_close(scbcr[4], ncbcr[64])  # Cr's DC follows Cb's four
    torch.testing.assert_close(sy[4], ny[8])
    with pytest.raises(ValueError, match="normalize before selecting"):
        T.Normalize(mean, std)((sy, scbcr))
    selected = T.Normalize(mean, std).select("dctnet24")  # the statistics of the subset
    torch.testing.assert_close(selected((T.SelectChannels("dctnet24")((y, cbcr)))), (sy, scbcr))
    with pytest.raises(ValueError, match="unknown channel preset"):
        T.SelectChannels("dctnet25")
    for step in (T.Normalize(mean, std), T.SelectChannels("dctnet24")):  # geometry pending: ToTensor first
        with pytest.raises(TypeError, match="after ToTensor"):
            T.Compose([T.CenterCrop(64), step])(image)


def test_collate_stacks_into_the_contract():
    image = dctload.read_coefficients(encode(photo_like(64, 64), quality=90))
    sample = T.ToTensor()(image)
    (y, cbcr), targets = dctload.collate([(sample, 3), (sample, 5)])
    assert y.shape == (2, 64, 8, 8) and cbcr.shape == (2, 128, 4, 4) and targets.tolist() == [3, 5]
    other = T.ToTensor()(T.CenterCrop(32)(image))
    with pytest.raises(ValueError, match="different sizes"):
        dctload.collate([(sample, 3), (other, 5)])


def test_statistics_estimate_and_round_trip(tmp_path):
    from dctload import stats

    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.jpg")
        files[-1].write_bytes(encode(photo_like(300, 280, seed=i), quality=85))
    result = stats.estimate(files, num_threads=2)
    samples = [T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])(dctload.read_coefficients(f)) for f in files]
    y = torch.stack([s[0] for s in samples]).double()
    np.testing.assert_allclose(result.mean[0], y.mean(dim=(0, 2, 3)).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result.std[0], y.std(dim=(0, 2, 3), unbiased=False).numpy(), rtol=1e-5, atol=1e-5)
    result.save(tmp_path / "s.json")
    normalize = dctload.stats.load(tmp_path / "s.json").normalize()
    ny, _ = normalize(samples[0])
    assert abs(float(ny[0].mean())) < 3

"""The GPU backends of dctload.loader (and their parts: packets, GPU resampling, pixel
conversion) against the cpu backend's batch contract.

Every test runs on the CPU (torch's CPU device, DALI's CPU-only pipelines) and again on
CUDA where a GPU is present. Tolerances:

- coefficients resampled by the hybrid paths: the CPU path's own bound, max error below
  1e-5 of the coefficient scale (the same exact maths in float32);
- pixels decoded by another decoder (nvJPEG, DALI, torchvision's libjpeg) and converted:
  PSNR of the reconstructed Y and chroma planes against the CPU path's >= 40 dB (measured
  48-66 dB on the ImageNet sample; the decoders round pixels to 8 bits and upsample chroma
  before the resize).
"""

from __future__ import annotations

import glob
import os
import sys

import numpy as np
import pytest
import torch

import dctload
from dctload import coefficients, pixels
from dctload.packets import PackedBatch, ToPacket, collate_packets, unpack_blocks
from dctload import transforms as T
from dctload.packet_resampling import resample_packets
from dctload.recipe import Recipe

from conftest import SHARED_DATA
from test_fused import gray_and_color_files

IMAGENET = os.path.join(SHARED_DATA, "imagenet-sample")
DALI_MIXED = os.path.join(SHARED_DATA, "jpeg-edge", "dali-mixed")
needs_data = pytest.mark.skipif(not os.path.isdir(IMAGENET), reason=f"shared data absent: {IMAGENET}")

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]

try:
    import nvidia.dali  # noqa: F401

    HAVE_DALI = True
except ImportError:
    HAVE_DALI = False
needs_dali = pytest.mark.skipif(not HAVE_DALI, reason="NVIDIA DALI is not installed (pip install dctload[dali])")


def imagenet_files(n: int) -> list[str]:
    return sorted(glob.glob(os.path.join(IMAGENET, "*.JPEG")))[:n]


def cpu_reference(path: str, recipe) -> tuple[torch.Tensor, torch.Tensor]:
    return recipe(dctload.read_coefficients(path, fallback="pixels"))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of the planes reconstructed from two coefficient tensors (..., 64, h, w)."""
    pa, pb = pixels.from_coefficients(a.double().cpu()), pixels.from_coefficients(b.double().cpu())
    return float(10 * torch.log10(255.0 ** 2 / ((pa - pb) ** 2).mean()))


def assert_close_to(y, cbcr, ref, bound=1e-5):
    ry, rc = ref
    for got, want in ((y, ry), (cbcr, rc)):
        scale = max(float(want.abs().max()), 1.0)
        assert float((got.cpu() - want).abs().max()) <= bound * scale


def assert_within_decoder_tolerance(y, cbcr, ref, min_psnr=40.0):
    """Pixel decoders (nvJPEG, DALI) round and clamp; their planes must be within
    ``min_psnr`` dB of the exact CPU path's, luma and each chroma plane."""
    ry, rc = ref
    assert psnr(y, ry) >= min_psnr
    assert psnr(cbcr.reshape(2, 64, *cbcr.shape[-2:]), rc.reshape(2, 64, *rc.shape[-2:])) >= min_psnr


# --- pixels_to_batch -----------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_pixels_to_batch_is_the_blockwise_dct_of_ycbcr_with_chroma_halved(device):
    g = torch.Generator().manual_seed(0)
    ycbcr = torch.rand((2, 3, 32, 48), generator=g, dtype=torch.float64) * 255
    y, cbcr = pixels.pixels_to_batch(ycbcr.to(device), color="ycbcr")
    assert y.shape == (2, 64, 4, 6) and cbcr.shape == (2, 128, 2, 3) and y.dtype == torch.float32
    for b in range(2):
        expected = coefficients.blockwise_dct(ycbcr[b, 0].numpy() - 128)  # (hb, wb, 64)
        np.testing.assert_allclose(y[b].cpu().permute(1, 2, 0).numpy(), expected, atol=2e-3)
    chroma = torch.nn.functional.interpolate(ycbcr[:, 1:], size=(16, 24), mode="bilinear", antialias=True)
    np.testing.assert_allclose(pixels.from_coefficients(cbcr.double().cpu().reshape(2, 2, 64, 2, 3)).numpy(),
                               chroma.numpy(), atol=2e-3)


def test_pixels_to_batch_converts_rgb_and_maps_gray_to_zero_chroma():
    gray = torch.full((1, 3, 16, 16), 77.0)
    y, cbcr = pixels.pixels_to_batch(gray)
    assert torch.allclose(cbcr, torch.zeros_like(cbcr), atol=1e-3)
    assert y[0, 0, 0, 0].item() == pytest.approx(8 * (77 - 128), abs=1e-3)  # DC = 8 x mean
    with pytest.raises(ValueError, match="multiple of 16"):
        pixels.pixels_to_batch(torch.zeros((1, 3, 24, 16)))


# --- the hybrid: exact resampling of coefficients ------------------------------------


def edge_files() -> list[str]:
    files = sorted(glob.glob(os.path.join(DALI_MIXED, "*")))
    return [f for f in files if f.lower().endswith((".jpg", ".jpeg"))]


@needs_data
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("train", [True, False], ids=["train", "val"])
def test_resampled_packets_equal_the_cpu_path(device, train):
    """Same views (same random boxes and flips) through ToTensor on the CPU and through
    ToPacket + resample_packets, in one padded batch of mixed sizes and subsamplings."""
    files = imagenet_files(24) + edge_files()
    packets, references = [], []
    for k, path in enumerate(files):
        image = dctload.read_coefficients(path, fallback="pixels")
        torch.manual_seed(k)
        view = T.Compose(Recipe(train=train).geometry())(image)
        packets.append(ToPacket()(view))
        references.append(T.ToTensor()(view))
    packed, order = collate_packets([(p, k) for k, p in enumerate(packets)], group=8)
    assert len(packed.layout) == -(-len(files) // 8)
    y, cbcr = resample_packets(packed, device)
    assert y.device.type == device and y.shape == (len(files), 64, 28, 28) and cbcr.shape == (len(files), 128, 14, 14)
    assert sorted(order.tolist()) == list(range(len(files)))
    for k, index in enumerate(order.tolist()):
        assert_close_to(y[k], cbcr[k], references[index])


def _random_packet(rng, rows, cols, chroma_rows, chroma_cols, density):
    def plane(r, c):
        values = rng.integers(-1024, 1024, size=(r, c, 64), dtype=np.int16)
        values[rng.random((r, c, 64)) > density] = 0
        return torch.from_numpy(values)

    geometry = torch.zeros((3, 2, 6), dtype=torch.float64)
    return plane(rows, cols), plane(chroma_rows, chroma_cols), plane(chroma_rows, chroma_cols), torch.ones(3, 64), geometry


@pytest.mark.parametrize("device", DEVICES)
def test_packed_batches_unpack_to_the_padded_blocks_exactly(device):
    """collate_packets' sparse form (masks + nonzero values) gives back every block, in
    sorted groups padded with zeros: dense, empty and single-block planes, coefficient 63,
    negative values; and ships fewer bytes than the dense blocks."""
    rng = np.random.default_rng(0)
    shapes = [(7, 5, 4, 3), (1, 1, 1, 1), (12, 9, 6, 5), (3, 8, 3, 8), (20, 2, 10, 1), (4, 4, 2, 2), (9, 11, 5, 6)]
    packets = [_random_packet(rng, *shape, density) for shape, density in zip(shapes, [0.3, 1.0, 0.1, 0.0, 0.5, 1.0, 0.02])]
    packets[0][0][0, 0, 63] = -1
    packed, order = collate_packets([(p, k) for k, p in enumerate(packets)], group=3)
    assert order.tolist() == [1, 5, 3, 0, 4, 6, 2]  # by luma area
    assert packed.layout.tolist() == [[3, 4, 8, 3, 8], [3, 20, 11, 10, 6], [1, 12, 9, 6, 5]]
    groups = unpack_blocks(packed, device)
    first = 0
    for (luma, chroma), (n, hy, wy, hc, wc) in zip(groups, packed.layout.tolist()):
        assert luma.device.type == device and luma.dtype == torch.int16
        assert luma.shape == (n, hy, wy, 64) and chroma.shape == (2 * n, hc, wc, 64)
        for i, index in enumerate(order[first:first + n].tolist()):
            y, cb, cr = packets[index][:3]
            for got, want in [(luma[i], y), (chroma[i], cb), (chroma[n + i], cr)]:
                expected = torch.zeros_like(got.cpu())
                expected[: want.shape[0], : want.shape[1]] = want
                assert torch.equal(got.cpu(), expected)
        first += n
    dense = sum(p[k].numel() * 2 for p in packets for k in range(3))
    shipped = packed.masks.numel() + packed.values.numel() * 2
    assert packed.values.numel() == sum(int((p[k] != 0).sum()) for p in packets for k in range(3))
    assert shipped < dense


@needs_data
def test_packets_cover_flips_odd_boxes_and_the_image_border():
    path = os.path.join(DALI_MIXED, sorted(os.listdir(DALI_MIXED))[0])
    image = dctload.read_coefficients(path, fallback="pixels")
    h, w = image.height, image.width
    boxes = [(0, 0, 37, 53, (32, 48)), (h - 29, w - 45, 29, 45, (16, 16)), (3, 5, h - 3, w - 5, (64, 48))]
    for top, left, bh, bw, size in boxes:
        for flip in (False, True):
            view = T.F.resized_crop(image, top, left, bh, bw, size)
            view = T.F.hflip(view) if flip else view
            y, cbcr = resample_packets(collate_packets([ToPacket()(view)]))
            assert_close_to(y[0], cbcr[0], T.ToTensor()(view))


def test_gray_packets_give_zero_chroma(tmp_path):
    from PIL import Image

    path = tmp_path / "gray.jpg"
    Image.fromarray((np.arange(64 * 80).reshape(64, 80) % 251).astype(np.uint8)).save(path, quality=90)
    view = T.Compose(Recipe.val(32).geometry())(dctload.read_coefficients(path))
    y, cbcr = resample_packets(collate_packets([ToPacket()(view)]))
    assert_close_to(y[0], cbcr[0], T.ToTensor()(view))
    assert float(cbcr.abs().max()) == 0.0


def test_the_packets_loader_fills_batches_in_one_call_and_falls_back_per_image(tmp_path, monkeypatch):
    """The 'coefficients' backend's workers make FilledPackets; a batch with a bad file
    takes the per-image route, whose on_error applies (skip: recorded, raise: named)."""
    from dctload import fused
    from dctload.packets import FilledPackets

    files = gray_and_color_files(tmp_path)  # noqa: F821 - from test_fused
    calls = []
    real = fused.read_packed
    monkeypatch.setattr(fused, "read_packed", lambda *a, **k: calls.append(1) or real(*a, **k))
    loader = dctload.loader([(f, k) for k, f in enumerate(files)], "coefficients", Recipe.val(32), batch_size=5,
                            workers=0, device="cpu")
    assert isinstance(loader.dataset.__getitems__(list(range(5))), FilledPackets)
    (y, cbcr), targets = next(iter(loader))
    assert sorted(targets.tolist()) == list(range(5)) and len(calls) == 2
    for k, target in enumerate(targets.tolist()):
        assert_close_to(y[k], cbcr[k], cpu_reference(files[target], Recipe.val(32).dct_transform()))
    # an RGB JPEG: its header reads, the C call refuses its colour space, and the batch
    # goes per image, where the pixel route reads it
    from PIL import Image

    rgb = tmp_path / "rgb.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(
        rgb, "JPEG", keep_rgb=True, quality=90)
    assert dctload.read_header(str(rgb))["colorspace"] == "RGB"
    mixed = [(f, k) for k, f in enumerate(files)] + [(str(rgb), 5)]
    calls.clear()
    (y, cbcr), targets = next(iter(dctload.loader(mixed, "coefficients", Recipe.val(32), batch_size=6, workers=0,
                                                  device="cpu")))
    assert len(calls) == 1 and sorted(targets.tolist()) == list(range(6))
    for k, target in enumerate(targets.tolist()):
        assert_close_to(y[k], cbcr[k], cpu_reference(mixed[target][0], Recipe.val(32).dct_transform()))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    samples = [(f, k) for k, f in enumerate(files)] + [(str(bad), 9)]
    skipping = dctload.loader(samples, "coefficients", Recipe.val(32), batch_size=6, workers=0, device="cpu",
                              on_error="skip")
    (y, _), targets = next(iter(skipping))
    assert y.shape[0] == 6 and 9 not in targets.tolist()
    assert [p for p, _, _ in skipping.skipped()] == [str(bad)]
    with pytest.raises(dctload.JPEGError, match="bad.jpg"):
        next(iter(dctload.loader(samples, "coefficients", Recipe.val(32), batch_size=6, workers=0, device="cpu")))


@needs_data
def test_packed_batches_resample_without_waiting_on_the_gpu():
    """From pinned packets, everything the 'coefficients' backend queues per batch (copies, unpacking,
    operators, products) runs without a device synchronization."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    packets = []
    for k, path in enumerate(imagenet_files(6)):
        torch.manual_seed(k)
        packets.append(ToPacket()(T.Compose(Recipe().geometry())(dctload.read_coefficients(path))))
    packed = PackedBatch(*(t.pin_memory() for t in collate_packets(packets, group=4)))
    resample_packets(packed, "cuda")  # first call: kernels and allocator
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        y, cbcr = resample_packets(packed, "cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert y.shape == (6, 64, 28, 28) and cbcr.shape == (6, 128, 14, 14)


def test_resampling_stays_exact_with_tf32_matmuls():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    view = T.F.resize(_tiny_image(), [16, 16])
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        y, cbcr = resample_packets(collate_packets([ToPacket()(view)]), "cuda")
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    assert_close_to(y[0], cbcr[0], T.ToTensor()(view))


def _tiny_image():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return dctload.read_coefficients(buffer.getvalue())


# --- the loaders -----------------------------------------------------------------------


@needs_data
@pytest.mark.parametrize("device", DEVICES)
def test_coefficient_loader_validation_equals_the_cpu_loader_and_shards_cover_every_file(device):
    files = imagenet_files(20)
    samples = [(f, k) for k, f in enumerate(files)]
    recipe = Recipe.val().dct_transform()
    seen = []
    for rank in range(2):
        loader = dctload.loader(samples, "coefficients", Recipe.val(), batch_size=4, workers=0, device=device,
                                rank=rank, world=2)
        assert len(loader) == 3  # 10 files per shard
        for (y, cbcr), targets in loader:
            assert y.device.type == device
            for k, target in enumerate(targets.tolist()):
                assert_close_to(y[k], cbcr[k], cpu_reference(files[target], recipe))
                seen.append(target)
    assert sorted(seen) == list(range(20))


@needs_data
@pytest.mark.parametrize("device", DEVICES)
def test_nvjpeg_loader_validation_matches_the_cpu_loader_within_decoder_tolerance(device):
    files = imagenet_files(12)
    loader = dctload.loader([(f, k) for k, f in enumerate(files)], "nvjpeg", Recipe.val(), batch_size=6,
                            workers=0, device=device)
    recipe = Recipe.val().dct_transform()
    count = 0
    for (y, cbcr), targets in loader:
        for k, target in enumerate(targets.tolist()):
            assert_within_decoder_tolerance(y[k], cbcr[k], cpu_reference(files[target], recipe))
            count += 1
    assert count == 12


@needs_data
@pytest.mark.parametrize("backend", ["coefficients", "nvjpeg"])
def test_gpu_loader_train_batches_and_channel_subsets(backend):
    files = imagenet_files(10)
    loader = dctload.loader([(f, 0) for f in files], backend, Recipe(size=64, channels="dctnet24"), batch_size=4,
                            workers=2, device="cpu")
    assert len(loader) == 2  # the last partial batch is dropped
    loader.sampler.set_epoch(1)
    batches = list(loader)
    assert len(batches) == 2
    (y, cbcr), targets = batches[0]
    assert y.shape == (4, 16, 8, 8) and cbcr.shape == (4, 8, 4, 4) and targets.shape == (4,)
    assert torch.isfinite(y).all() and torch.isfinite(cbcr).all()


@pytest.fixture
def bad_jpeg(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return bad


def test_gpu_loaders_name_the_bad_file(bad_jpeg):
    for backend in ("coefficients", "nvjpeg"):
        loader = dctload.loader([(str(bad_jpeg), 0)], backend, Recipe.val(), batch_size=1, workers=0, device="cpu")
        with pytest.raises(dctload.JPEGError, match="bad.jpg"):
            next(iter(loader))


@pytest.mark.parametrize("backend", ["coefficients", "nvjpeg", "dali", "dali-hybrid"])
def test_gpu_backends_without_cuda_name_the_backend_that_works(monkeypatch, backend):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=f"the '{backend}' backend was asked for CUDA.*backend='cpu'"):
        dctload.loader([("x.jpg", 0)], backend)  # a GPU backend's device defaults to CUDA


def test_missing_dali_names_the_torch_backends(monkeypatch):
    monkeypatch.setitem(sys.modules, "nvidia.dali", None)
    with pytest.raises(ImportError, match="backend 'coefficients' or 'nvjpeg'"):
        dctload.loader([("x.jpg", 0)], "dali", device="cpu")


# --- DALI ------------------------------------------------------------------------------

DALI_DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@needs_dali
@needs_data
@pytest.mark.parametrize("device", DALI_DEVICES)
def test_dali_validation_matches_the_cpu_loader_and_shards_cover_every_file(device):
    files = imagenet_files(20)
    samples = [(f, k) for k, f in enumerate(files)]
    recipe = Recipe.val().dct_transform()
    for backend, check in (("dali", "psnr"), ("dali-hybrid", "exact")):
        seen = []
        for shard in range(3):
            loader = dctload.loader(samples, backend, Recipe.val(), batch_size=4, workers=2, device=device,
                                    rank=shard, world=3)
            for epoch in range(2):
                batches = list(loader)
                assert len(batches) == len(loader)
                for (y, cbcr), targets in batches:
                    assert y.device.type == device
                    for k, target in enumerate(targets.tolist()):
                        ref = cpu_reference(files[target], recipe)
                        if check == "exact":
                            assert_close_to(y[k], cbcr[k], ref)
                        else:
                            assert_within_decoder_tolerance(y[k], cbcr[k], ref)
                        if epoch == 0:
                            seen.append(target)
        assert sorted(seen) == list(range(20)), backend


@needs_dali
@needs_data
@pytest.mark.parametrize("backend", ["dali", "dali-hybrid"])
def test_dali_train_batches(backend):
    files = imagenet_files(10)
    loader = dctload.loader([(f, k) for k, f in enumerate(files)], backend, Recipe(size=64, channels="dctnet24"),
                            batch_size=4, workers=2, device="cpu")
    assert len(loader) == 2
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 2
        (y, cbcr), targets = batches[0]
        assert y.shape == (4, 16, 8, 8) and cbcr.shape == (4, 8, 4, 4)
        assert set(targets.tolist()) <= set(range(10))
        assert torch.isfinite(y).all()


@needs_dali
@needs_data
def test_dali_hybrid_draws_follow_from_seed_epoch_and_batch_whichever_worker_reads(monkeypatch):
    import nvidia.dali.backend

    samples = [(f, k) for k, f in enumerate(imagenet_files(12))]

    def two_epochs(workers: int, seed: int):
        loader = dctload.loader(samples, "dali-hybrid", Recipe(size=64), batch_size=4, workers=workers,
                                device="cpu", seed=seed)
        return [[(targets, y) for (y, _), targets in loader] for _ in range(2)]

    def same(a, b) -> bool:
        return all(torch.equal(ta, tb) and torch.equal(ya, yb) for (ta, ya), (tb, yb) in zip(a, b))

    one_worker, other_seed = two_epochs(1, 0), two_epochs(2, 1)
    # the workers of a process that holds a CUDA context are spawned, not forked
    monkeypatch.setattr(nvidia.dali.backend, "IsDriverInitialized", lambda: True)
    two_spawned_workers = two_epochs(2, 0)
    assert all(len(epoch) == 3 for epoch in one_worker + two_spawned_workers + other_seed)
    assert same(one_worker[0], two_spawned_workers[0]) and same(one_worker[1], two_spawned_workers[1])
    assert not same(one_worker[0], one_worker[1])  # reshuffled and redrawn every epoch
    assert not same(one_worker[0], other_seed[0])


@needs_dali
@needs_data
def test_dali_hybrid_raises_the_typed_error_naming_the_file(bad_jpeg, tmp_path):
    for broken, error in ((bad_jpeg, dctload.JPEGError), (tmp_path / "missing.jpg", FileNotFoundError)):
        samples = [(f, 0) for f in imagenet_files(4)] + [(str(broken), 0)]
        batches = iter(dctload.loader(samples, "dali-hybrid", Recipe.val(64), batch_size=2, workers=2,
                                      device="cpu"))
        assert len(next(batches)[1]) == len(next(batches)[1]) == 2  # the good files first
        with pytest.raises(error, match=broken.name):
            next(batches)


@needs_dali
@needs_data
def test_dali_pixel_pipeline_failures_name_the_damaged_file_not_the_png_dali_decodes(bad_jpeg, tmp_path):
    from dctload.loaders.dali import unreadable_file_error

    png = glob.glob(os.path.join(SHARED_DATA, "jpeg-edge", "misnamed", "*.JPEG"))[0]  # DALI decodes it
    for broken, error in ((bad_jpeg, dctload.JPEGError), (tmp_path / "missing.jpg", FileNotFoundError)):
        samples = [(png, 0)] + [(f, 0) for f in imagenet_files(3)] + [(str(broken), 0)]
        with pytest.raises(error, match=broken.name):
            list(dctload.loader(samples, "dali", Recipe.val(64), batch_size=2, workers=1, device="cpu"))
    # a failure DALI alone has: the files dctload's reader refuses as unsupported are listed
    failure = unreadable_file_error([png] + imagenet_files(3), RuntimeError("nvImageCodec failure"))
    assert isinstance(failure, RuntimeError) and "refuses 1 as unsupported" in str(failure)
    assert os.path.basename(png) in str(failure) and "nvImageCodec failure" in str(failure)


@needs_dali
@needs_data
def test_dali_rgb_baseline_is_normalized_rgb():
    loader = dctload.loader([(f, 0) for f in imagenet_files(4)], "dali", Recipe.val(64), batch_size=4, workers=1,
                            device="cpu", output="rgb")
    (images, targets), = list(loader)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert -3 < float(images.mean()) < 3 and float(images.min()) >= -2.2 and float(images.max()) <= 2.7


@needs_dali
@needs_data
@pytest.mark.parametrize("device", DALI_DEVICES)
def test_dali_hardware_decoder_share_keeps_the_batches(device):
    """``hw_decoder_load=1`` sends every image to nvJPEG's hardware decoder where the GPU
    has one (the CPU decoder ignores it); the batches still match the CPU loader."""
    files = imagenet_files(8)
    recipe = Recipe.val().dct_transform()
    loader = dctload.loader([(f, k) for k, f in enumerate(files)], "dali", Recipe.val(), batch_size=8, workers=2,
                            device=device, hw_decoder_load=1.0)
    (y, cbcr), targets = next(iter(loader))
    for k, target in enumerate(targets.tolist()):
        assert_within_decoder_tolerance(y[k], cbcr[k], cpu_reference(files[target], recipe))


@pytest.mark.parametrize("backend", ["cpu", "coefficients", "nvjpeg", "dali-hybrid"])
def test_only_dali_takes_a_hardware_decoder_share(backend):
    with pytest.raises(ValueError, match="hw_decoder_load.*'dali'"):
        dctload.loader([("x.jpg", 0)], backend, device="cpu", hw_decoder_load=1.0)

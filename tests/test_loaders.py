"""dctload.loader: one vocabulary and one recipe for every backend (on torch's CPU device
and DALI's CPU pipelines here; tests/test_gpu.py checks each backend's batches in depth)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import dctload
from dctload import loaders
from dctload.recipe import Recipe

from conftest import encode, photo_like

try:
    import nvidia.dali  # noqa: F401

    HAVE_DALI = True
except ImportError:
    HAVE_DALI = False
# `run.sh test-sanitized` preloads AddressSanitizer, which DALI's libraries cannot run under
# (tests/test_gpu.py is left out of that run for the same reason).
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def make_folder(root, square: bool):
    """Two classes of 4 JPEGs, 4:2:0 and 4:4:4, sides that are not multiples of 16."""
    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            image = photo_like(72 + 8 * i, 72 + 8 * i if square else 96 - 4 * i, seed=10 * c + i)
            (root / name / f"{i}.JPEG").write_bytes(encode(image, quality=90, subsampling=2 * (i % 2)))
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("loaders") / "train", square=False)


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    """Square images: a whole-image crop is the one box of area 1 and aspect 1, in every
    backend's RandomResizedCrop (DALI's fallback for an unattainable box is its own)."""
    return make_folder(tmp_path_factory.mktemp("squares") / "train", square=True)


def test_the_recipe_renders_one_description_for_coefficients_and_pixels():
    train, val = Recipe(size=64, scale=(0.3, 0.9), ratio=(0.5, 2.0), flip=0.25), Recipe.val(64)
    steps = train.dct_transform().transforms
    assert [type(s).__name__ for s in steps] == ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor"]
    assert steps[0].size == [64, 64] and steps[0].scale == (0.3, 0.9) and steps[0].ratio == (0.5, 2.0)
    assert steps[1].p == 0.25
    rgb = train.rgb_transform().transforms
    assert rgb[0].size == (64, 64) and rgb[0].scale == (0.3, 0.9) and rgb[0].ratio == (0.5, 2.0) and rgb[1].p == 0.25
    assert val.resize_size == 73 and [type(s).__name__ for s in val.rgb_transform().transforms][:2] == \
        ["Resize", "CenterCrop"]
    assert type(Recipe(channels="dctnet24").dct_transform().transforms[-1]).__name__ == "SelectChannels"
    for bad in (dict(size=40), dict(flip=2.0), dict(channels="dctnet25")):
        with pytest.raises(ValueError):
            Recipe(**bad)


def test_the_recipe_draws_the_same_boxes_from_a_header_as_from_coefficients(folder):
    """The nvjpeg backend draws from headers (Recipe.draw) what the DCT transforms draw."""
    path = sorted(folder.rglob("*.JPEG"))[3]
    recipe = Recipe(size=32)
    torch.manual_seed(5)
    view = dctload.transforms.Compose(recipe.geometry())(dctload.read_coefficients(path))
    torch.manual_seed(5)
    header = dctload.read_header(str(path))
    (top, left, height, width), flips = recipe.draw(header["height"], header["width"])
    flip = flips[0]  # horizontal
    assert view.cols.flip == flip and view.rows.size == view.cols.size == 32
    assert (view.rows.lo, view.rows.hi) == (top, top + height)
    bounds = (view.cols.lo, view.cols.hi)
    assert bounds == ((header["width"] - left - width, header["width"] - left) if flip else (left, left + width))


BACKENDS_ON_CPU = ["cpu", "coefficients", "nvjpeg"] + (["dali", "dali-hybrid"] if HAVE_DALI and not UNDER_ASAN else [])


@pytest.mark.parametrize("backend", BACKENDS_ON_CPU)
def test_every_backend_reads_the_recipe(squares, backend):
    """One recipe change (always flip, a whole-image square crop, a channel subset)
    reaches every backend: its batches equal the cpu backend's, flipped."""
    recipe = Recipe(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0, channels="dctnet24")
    reference = {}
    for (y, cbcr), targets in dctload.loader(squares, "cpu", recipe, batch_size=8, workers=0):
        for k, target in enumerate(targets.tolist()):
            reference.setdefault(target, []).append((y[k], cbcr[k]))
    unflipped = {}
    for (y, _), targets in dctload.loader(squares, "cpu", Recipe(size=32, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0,
                                                                channels="dctnet24"), batch_size=8, workers=0):
        for k, target in enumerate(targets.tolist()):
            unflipped.setdefault(target, []).append(y[k])
    loader = dctload.loader(squares, backend, recipe, batch_size=8, workers=1, device="cpu")
    assert len(loader) == 1 and loader.classes == ["cat", "dog"] and loader.device.type == "cpu"
    loader.set_epoch(1)
    (y, cbcr), targets = next(iter(loader))
    assert y.shape == (8, 16, 4, 4) and cbcr.shape == (8, 8, 2, 2)
    exact = backend in ("cpu", "coefficients", "dali-hybrid")
    for k, target in enumerate(targets.tolist()):
        scale = float(reference[target][0][0].abs().max())
        best = min(float((y[k] - ry).abs().max()) for ry, _ in reference[target])
        assert best <= (1e-5 if exact else 0.05) * scale, (backend, best, scale)
        # and flipped: no image of its class unflipped is as close (a backend that ignored flip fails here)
        plain = min(float((y[k] - ry).abs().max()) for ry in unflipped[target])
        assert plain > 0.2 * scale, (backend, plain, scale)


def test_rgb_output_comes_from_the_same_recipe(folder):
    recipe = Recipe(size=48)
    rgb = dctload.loader(folder, "cpu", recipe, batch_size=4, workers=0, output="rgb")
    images, targets = next(iter(rgb))
    assert images.shape == (4, 3, 48, 48) and images.dtype == torch.float32 and targets.shape == (4,)
    assert -3 < float(images.mean()) < 3  # normalized with ImageNet's statistics


def test_one_vocabulary_and_clear_refusals(folder):
    for options, message in [
        (dict(backend="gpu"), "unknown backend 'gpu'"),
        (dict(backend="coefficients", device="cpu", output="rgb"), "yields DCT coefficients"),
        (dict(output="rgb", recipe=Recipe(channels="dctnet24")), "channel subset is for DCT"),
        (dict(output="yuv"), "output must be"),
        (dict(rank=2, world=2), "rank 2 is outside"),
        (dict(on_error="ignore"), "on_error"),
        (dict(output="rgb", on_error="skip"), "RGB baseline"),
        (dict(backend="nvjpeg", device="cpu", on_error="skip"), "nvjpeg backend raises"),
    ]:
        with pytest.raises(ValueError, match=message):
            dctload.loader(folder, **options)
    with pytest.raises(ValueError, match="no JPEG files"):
        dctload.loader([])


def test_shards_and_epochs(folder):
    """Validation: every file once over the ranks; training: reshuffled by set_epoch, the
    same batches whatever the number of workers."""
    seen = []
    for rank in range(3):
        for _, targets in dctload.loader(folder, "cpu", Recipe.val(32), batch_size=2, workers=0, rank=rank, world=3):
            seen += targets.tolist()
    assert sorted(seen) == [0] * 4 + [1] * 4

    def epoch(workers, number):
        train = dctload.loader(folder, "cpu", Recipe(size=32), batch_size=4, workers=workers, seed=3)
        train.sampler.set_epoch(number)  # as ImageNet scripts call it
        return [y for (y, _), _ in train]

    assert all(torch.equal(a, b) for a, b in zip(epoch(0, 1), epoch(2, 1)))
    assert not torch.equal(epoch(0, 0)[0], epoch(0, 1)[0])


def test_defaults_fit_the_machine(folder, monkeypatch):
    """Workers default to the usable cores (shared among torchrun's processes, one left to
    a process that drives a GPU), pinned memory only towards CUDA: no torch warning about
    too many workers or pinning without an accelerator."""
    monkeypatch.setattr(loaders, "default_num_threads", lambda: 16)
    assert loaders.default_workers() == 16 and loaders.default_workers(torch.device("cuda")) == 15
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert loaders.default_workers() == 4 and loaders.default_workers(torch.device("cuda")) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert loaders.default_workers(torch.device("cuda")) == 1
    monkeypatch.undo()
    cores = dctload.reader.default_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = dctload.loader(folder)
        assert train.options.workers == cores and not train.options.pin_memory
        for _ in train:
            pass


@pytest.mark.parametrize("backend", BACKENDS_ON_CPU)
def test_training_shards_hold_as_many_batches_on_every_rank(folder, backend):
    """8 files over 3 ranks: every rank the same number of batches (DistributedDataParallel
    waits forever otherwise), all of them full; set_epoch reshuffles where the backend
    owns its shuffle."""
    counts = []
    for rank in range(3):
        loader = dctload.loader(folder, backend, Recipe(size=32), batch_size=2, workers=1, device="cpu", rank=rank,
                                world=3)
        batches = [targets for _, targets in loader]
        counts.append((len(loader), len(batches)))
        assert all(len(t) == 2 for t in batches)
    assert len(set(counts)) == 1 and counts[0][0] == counts[0][1] >= 1, counts
    if backend.startswith("dali"):
        return  # DALI shuffles by its own epoch count (Loader.set_epoch)
    loader = dctload.loader(folder, backend, Recipe(size=32), batch_size=8, workers=0, device="cpu")

    def order(epoch):
        loader.set_epoch(epoch)
        return [key[-1] if isinstance(key, tuple) else key for key in loader.shuffle]  # (epoch, index) for cpu

    assert order(0) == order(0) and order(0) != order(1) and sorted(order(1)) == list(range(8))

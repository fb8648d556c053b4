"""The C fast path: exact resampling in C, the batch path and crop-aware decoding (dctload.fused)."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

import dctload
import dctload.transforms as T
from conftest import SHARED_DATA, SKIP_REASON, encode, photo_like
from dctload import _reader, fused
from dctload.packets import ToPacket, collate_packets
from dctload.recipe import Recipe
from dctload.coefficients import AxisMap, resample, resample_into
from dctload.transforms import functional as F
from test_resample import BOXES, box_axis, chain_case, pixel_reference

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=SKIP_REASON)


def c_resample(plane, table, rows, cols):
    out = np.full((64, rows.size // 8, cols.size // 8), np.nan, np.float32)
    resample_into(plane, table, rows, cols, out)
    return out


@pytest.mark.parametrize("box,out_size", BOXES + [((1, 2, 45, 58), (8, 8))])  # and a downscale by 6-7
@pytest.mark.parametrize("flip", [False, True])
def test_c_resampling_equals_the_pixel_domain_chain(box, out_size, flip):
    """The C path under the numpy reference's own bound, against the same float64 chain."""
    image, rows, cols, reference = chain_case(box, out_size, flip)
    ours = c_resample(image.y, image.qt[0], rows, cols)
    assert np.abs(ours - reference).max() < 2e-6 * np.abs(reference).max()
    numpy_path = resample([image.y], image.qt[:1], rows, cols)[0]
    assert np.abs(ours - numpy_path).max() < 2e-6 * np.abs(reference).max()


@needs_data
@pytest.mark.parametrize("name", ["420-odd-both.jpg", "411-non-multiple-4-width.jpg", "440.jpg", "2x4.jpg", "410.jpg",
                                  "422-odd-width.jpg"])
def test_c_resampling_on_real_subsamplings_with_random_boxes(name):
    image = dctload.read_coefficients(SHARED_DATA / "jpeg-edge" / "dali-mixed" / name)
    rng = np.random.default_rng(1)
    for _ in range(4):
        height, width = int(rng.integers(8, image.height)), int(rng.integers(8, image.width))
        top, left = int(rng.integers(0, image.height - height + 1)), int(rng.integers(0, image.width - width + 1))
        view = F.resized_crop(image, top, left, height, width, [int(rng.choice([16, 64, 224]))] * 2)
        if rng.integers(0, 2):
            view = F.hflip(view)
        planes = [(view.rows, view.cols)] + F.chroma_grids(view)
        for c, (coefs, (rows, cols)) in enumerate(zip(image.components, planes)):
            reference = pixel_reference(image.dequantize(np.float64)[c], rows, cols)
            ours = c_resample(coefs, image.qt[c], rows, cols)
            assert np.abs(ours - reference).max() < 2e-6 * np.abs(reference).max(), (name, c, rows, cols)


def test_c_resampling_refuses_what_it_cannot_take():
    image = dctload.read_coefficients(encode(photo_like(40, 48), quality=90, subsampling=0))
    out = np.empty((64, 1, 1), np.float32)
    with pytest.raises(ValueError, match="outside the plane"):
        resample_into(image.y, image.qt[0], box_axis(0, 41, 8), box_axis(0, 8, 8), out)
    with pytest.raises(ValueError, match="whole 8x8 blocks"):
        resample_into(image.y, image.qt[0], box_axis(0, 12, 12), box_axis(0, 8, 8), np.empty((64, 1, 1), np.float32))
    with pytest.raises(ValueError, match="out must be float32"):
        resample_into(image.y, image.qt[0], box_axis(0, 8, 8), box_axis(0, 8, 8), np.empty((64, 2, 1), np.float32))
    with pytest.raises(ValueError, match="unusable axis"):
        resample_into(image.y, image.qt[0], AxisMap(0, float("nan"), 8, 0, 8), box_axis(0, 8, 8), out)
    with pytest.raises(ValueError, match="multiple of 16"):
        F.to_tensor(F.resize(image, [24, 24]))
    with pytest.raises(ValueError, match="unusable axis"):
        resample_into(image.y, image.qt[0], AxisMap(-10, 1, 8, -10, 30), box_axis(0, 8, 8), out)


@pytest.mark.parametrize("axis", [(-10.0, 1.0, -10.0, 40.0, 32, 0), (0.0, 1.0, float("-inf"), 40.0, 32, 0),
                                  (1e300, 1.0, 0.0, 40.0, 32, 0), (0.0, 1.0, 0.0, 40.0, 2 ** 40, 0)])
def test_the_batch_call_refuses_unusable_geometry_per_image(axis):
    """A box before sample 0, infinite or huge numbers: that image's typed error, no crash."""
    data = encode(photo_like(48, 48), quality=90, subsampling=2)  # 4:2:0: chroma planes of 24
    geometry = np.zeros((2, 3, 2, 6))
    geometry[:] = (0.0, 1.5, 0.0, 48.0, 32, 0)
    geometry[:, 1:, :] = (0.0, 1.5, 0.0, 24.0, 16, 0)
    geometry[1, 0, 0] = axis
    y, cbcr = np.zeros((2, 64, 4, 4), np.float32), np.zeros((2, 128, 2, 2), np.float32)
    if axis[4] != 32:  # an output size that does not fit the batch: the whole call is refused
        with pytest.raises(ValueError, match="does not fit the batch"):
            dctload._reader.read_resampled([data, data], geometry, y, cbcr)
        return
    errors, _, _ = dctload._reader.read_resampled([data, data], geometry, y, cbcr)
    assert errors[0] is None and isinstance(errors[1], dctload.UnsupportedJPEGError) and errors[1].code == "geometry"


@pytest.fixture
def folder(tmp_path):
    """Real ImageNet files (4:4:4, 4:2:0, gray) beside a progressive, a CMYK, a damaged
    and a missing-data file."""
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    if SHARED_DATA.is_dir():
        for f in sorted((SHARED_DATA / "imagenet-sample").glob("*.JPEG"))[:12]:
            shutil.copy(f, root / "a" / f.name)
        shutil.copy(SHARED_DATA / "jpeg-edge" / "libjpeg-turbo" / "testimgp.jpg", root / "b" / "progressive.jpg")
        shutil.copy(SHARED_DATA / "jpeg-edge" / "pillow" / "pil_sample_cmyk.jpg", root / "b" / "cmyk.jpg")
    else:  # a user's machine: generated photos in their place, 4:4:4 and 4:2:0
        for i in range(12):
            (root / "a" / f"{i}.JPEG").write_bytes(encode(photo_like(150 + 10 * i, 200, seed=50 + i), quality=90,
                                                          subsampling=2 * (i % 2)))
    for i in range(4):
        (root / "b" / f"gray{i}.jpg").write_bytes(encode(photo_like(70 + 9 * i, 90, seed=i, channels=1), quality=85))
        (root / "b" / f"photo{i}.jpg").write_bytes(encode(photo_like(120, 96 + 16 * i, seed=i), quality=80,
                                                          subsampling=2))
    return root


def per_image(dataset, indices, seeds):
    samples = []
    for index, seed in zip(indices, seeds):
        torch.manual_seed(seed)
        samples.append(dataset[index])
    return dctload.collate(samples)


@pytest.mark.parametrize("train", [True, False])
def test_batch_path_equals_the_per_image_path(folder, train):
    """Same draws, same C kernel: the batch equals the per-image transforms bit for bit
    (with crop-aware decoding, a progressive file, CMYK through the pixel route, gray)."""
    recipe = T.Compose([*Recipe(train=train, size=64).dct_transform().transforms, T.Normalize(
        (torch.linspace(-5, 5, 64), torch.zeros(128)), (torch.full((64,), 3.0), torch.linspace(1, 2, 128)))])
    dataset = dctload.DCTImageFolder(folder, transform=recipe)
    indices = list(range(len(dataset)))
    seeds = [1000 + i for i in indices]
    (y, cbcr), targets = dctload.collate(dataset.load_batch(indices, seeds=seeds))
    (y_ref, cbcr_ref), targets_ref = per_image(dataset, indices, seeds)
    assert torch.equal(y, y_ref) and torch.equal(cbcr, cbcr_ref) and torch.equal(targets, targets_ref)
    assert dataset.skipped() == []


def test_dataloader_fetches_whole_batches_alike_in_workers_and_in_process(folder):
    dataset = dctload.DCTImageFolder(folder, transform=Recipe(train=False, size=32).dct_transform())
    results = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(dataset, batch_size=5, num_workers=workers, collate_fn=dctload.collate)
        results.append([batch for batch in loader])
    for ((y0, c0), t0), ((y2, c2), t2) in zip(*results):
        assert torch.equal(y0, y2) and torch.equal(c0, c2) and torch.equal(t0, t2)


def test_crop_aware_decoding_stops_at_the_box_and_matches_a_whole_read():
    data = encode(photo_like(400, 96), quality=90, subsampling=2)
    image = dctload.read_coefficients(data)
    view = F.resized_crop(image, 10, 8, 64, 80, [32, 32])
    y, cbcr, outcomes = fused.read_resampled([data], [F.resized_crop(fused.header_image(dctload.read_header(data)),
                                                                     10, 8, 64, 80, [32, 32])])
    decoded, total = outcomes[0].rows_decoded, outcomes[0].rows_total
    assert outcomes[0].error is None and total == 25 and decoded <= 6  # 16-row MCUs; the box ends at row 74
    y_ref, cbcr_ref = F.to_tensor(view)
    assert torch.equal(y[0], y_ref) and torch.equal(cbcr[0], cbcr_ref)
    y_all, cbcr_all, [whole] = fused.read_resampled([data], [F.resized_crop(
        fused.header_image(dctload.read_header(data)), 10, 8, 64, 80, [32, 32])], crop_aware=False)
    assert whole.rows_decoded == whole.rows_total == 25 and torch.equal(y_all, y) and torch.equal(cbcr_all, cbcr)


def test_the_batch_is_written_into_the_callers_tensors():
    data = encode(photo_like(64, 80), quality=90)
    view = F.resized_crop(fused.header_image(dctload.read_header(data)), 4, 4, 48, 64, [32, 32])
    y, cbcr = torch.full((1, 64, 4, 4), float("nan")), torch.full((1, 128, 2, 2), float("nan"))
    got_y, got_cbcr, [outcome] = fused.read_resampled([data], [view], out=(y, cbcr))
    assert got_y is y and got_cbcr is cbcr and outcome.error is None and torch.isfinite(y).all()
    expected_y, _ = F.to_tensor(dataclasses.replace(view, image=dctload.read_coefficients(data)))
    assert torch.equal(y[0], expected_y)
    with pytest.raises(ValueError, match="out must be"):
        fused.read_resampled([data], [view], out=(y[:, :32], cbcr))


@needs_data
def test_progressive_files_are_read_whole():
    data = (SHARED_DATA / "jpeg-edge" / "libjpeg-turbo" / "testimgp.jpg").read_bytes()
    header = fused.header_image(dctload.read_header(data))
    _, _, outcomes = fused.read_resampled([data], [F.resized_crop(header, 0, 0, 32, 32, [16, 16])])
    assert outcomes[0].rows_decoded == outcomes[0].rows_total > 2


def truncated_in_scan(tmp_path):
    data = encode(photo_like(160, 128), quality=90)
    path = tmp_path / "t" / "truncated.jpg"
    path.parent.mkdir()
    path.write_bytes(data[: len(data) * 2 // 3])
    return tmp_path


def test_files_read_with_warnings_are_recorded_and_strict_makes_them_errors(tmp_path):
    root = truncated_in_scan(tmp_path)
    whole = T.Compose([T.Resize([32, 32]), T.ToTensor()])  # reads every row: the damage is met
    for batch in (False, True):
        dataset = dctload.DCTImageFolder(root, transform=whole, on_error="skip")
        (y, cbcr), _ = dctload.collate(dataset.load_batch([0]) if batch else [dataset[0]])
        assert y.shape == (1, 64, 4, 4) and torch.isfinite(y).all()
        [(path, kind, reason)] = dataset.skipped()
        assert path.endswith("truncated.jpg") and kind == "warning" and "read with warnings" in reason
        strict = dctload.DCTImageFolder(root, transform=whole, strict=True)
        with pytest.raises(dctload.JPEGError, match="truncated.jpg") as raised:
            strict.load_batch([0]) if batch else strict[0]
        assert raised.value.code == "strict"


def test_batch_path_errors_name_the_file_and_follow_on_error(folder):
    (folder / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xdb" + bytes(40))
    recipe = Recipe(train=True, size=32).dct_transform()
    raising = dctload.DCTImageFolder(folder, transform=recipe)
    index = [p for p, _ in raising.samples].index(str(folder / "b" / "broken.jpg"))
    with pytest.raises(dctload.JPEGError, match="broken.jpg"):
        raising.load_batch([0, index])
    skipping = dctload.DCTImageFolder(folder, transform=recipe, on_error="skip")
    (y, cbcr), targets = dctload.collate(skipping.load_batch([0, index]))
    assert y.shape[0] == 2 and torch.isfinite(y).all()
    assert [p for p, _, _ in skipping.skipped()] == [str(folder / "b" / "broken.jpg")]


@needs_data
def test_errors_through_the_pixel_route_hold_no_frames_either():
    cmyk = (SHARED_DATA / "jpeg-edge" / "pillow" / "pil_sample_cmyk.jpg").read_bytes()
    [error] = dctload.read_batch([cmyk[: len(cmyk) * 9 // 10]], errors="return", fallback="pixels", strict=True)
    assert isinstance(error, dctload.JPEGError) and error.__context__ is not None
    assert error.__traceback__ is None and error.__context__.__traceback__ is None


def test_read_batch_errors_hold_no_frames():
    """A returned error must not keep the batch alive through its traceback's frames."""

    class Inputs(bytearray):
        pass

    good = Inputs(encode(photo_like(16, 16), quality=90))
    alive = weakref.ref(good)
    gc.disable()
    try:
        results = dctload.read_batch([good, b"not a jpeg"], errors="return", num_threads=1)
        assert results[1].__traceback__ is None and isinstance(results[1], dctload.JPEGError)
        del good, results
        assert alive() is None  # freed by reference counting, no gc.collect()
    finally:
        gc.enable()


def test_other_transforms_and_unreadable_batches_take_the_per_image_route(folder):
    custom = T.Compose([T.CenterCrop(32), T.ToTensor(), lambda sample: (sample[0] * 2, sample[1])])
    assert fused.plan(custom) is None and fused.plan(Recipe(train=True).dct_transform()) is not None
    dataset = dctload.DCTImageFolder(folder, transform=custom)
    batch = dataset.load_batch([0, 1], seeds=[3, 4])
    assert not isinstance(batch, dctload.batch.FilledBatch)
    assert torch.equal(batch[0][0][0], dataset[0][0][0])
    for name in ("a_bad.jpg", "x_bad.jpg"):  # not side by side: a skip takes the next file
        (folder / "b" / name).write_bytes(b"garbage")
    skipping = dctload.DCTImageFolder(folder, transform=Recipe(train=False, size=32).dct_transform(), on_error="skip")
    paths = [p for p, _ in skipping.samples]
    broken = [paths.index(str(folder / "b" / n)) for n in ("a_bad.jpg", "x_bad.jpg")]
    (y, cbcr), targets = dctload.collate(skipping.load_batch(broken))  # every header unreadable
    assert y.shape == (2, 64, 4, 4) and len(skipping.skipped()) == 2


# --- the GPU path's packets, a batch in one C call (fused.read_packed) ---


def per_image_packets(files, plan, seeds):
    """collate_packets of ToPacket on each file's view, with the batch path's seeds."""
    packets = []
    with fused.seeded(seeds) as seed:
        for i, f in enumerate(files):
            seed(i)
            packets.append((ToPacket()(plan.draw(dctload.read_coefficients(f, fallback="pixels"))), i))
    return collate_packets(packets)


def gray_and_color_files(tmp_path) -> list[str]:
    files = []
    for i in range(5):
        path = tmp_path / f"{i}.jpg"
        channels = 1 if i in (1, 3) else 3
        path.write_bytes(encode(photo_like(40 + 24 * i, 90 - 8 * i, seed=i, channels=channels), quality=85,
                                **({} if channels == 1 else {"subsampling": 2 * (i % 2)})))
        files.append(str(path))
    return files


@pytest.mark.parametrize("train", [True, False], ids=["train", "val"])
def test_batch_packets_equal_the_per_image_packets(tmp_path, train):
    """fused.read_packed (one C call, crop-aware) gives collate_packets(ToPacket(...))
    bit for bit: masks, values, tables, geometry, layout and order; on ImageNet files and
    every dali-mixed subsampling where ../shared/data is present, generated gray and
    colour files always."""
    files = gray_and_color_files(tmp_path)
    if SHARED_DATA.is_dir():
        files += [str(p) for p in sorted((SHARED_DATA / "imagenet-sample").glob("*.JPEG"))[:40]]
        files += [str(p) for p in sorted((SHARED_DATA / "jpeg-edge" / "dali-mixed").glob("*.jp*g"))]
    plan = fused.plan(Recipe(train=train, size=224 if SHARED_DATA.is_dir() else 32).packet_transform())
    assert plan.packets
    datas = [open(f, "rb").read() for f in files]
    seeds = list(range(len(files)))
    views, _ = fused.draw(datas, files, plan, seeds)
    packed, order, outcomes = fused.read_packed(datas, views, names=files, num_threads=2)
    assert packed is not None, [o.error for o in outcomes if o.error]
    reference, targets = per_image_packets(files, plan, seeds)
    assert order == targets.tolist()
    for name, ours, theirs in zip(packed._fields, packed, reference):
        assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), name
    if train and SHARED_DATA.is_dir():  # crop-aware: the boxes' rows only
        assert sum(o.rows_decoded for o in outcomes) < sum(o.rows_total for o in outcomes)


def test_read_packed_refuses_buffers_that_cannot_hold_the_blocks(tmp_path):
    """Every write is checked against the buffers before any is made."""
    data = open(gray_and_color_files(tmp_path)[0], "rb").read()
    ranges = np.array([[[0, 2, 0, 2]] * 3], np.int32)
    ok = dict(mask_at=np.zeros((1, 3), np.int64), mask_row=np.full((1, 3), 2, np.int64),
              value_at=np.zeros((1, 3), np.int64))
    masks, values, tables = np.zeros((4, 8), np.uint8), np.zeros(256, np.int16), np.zeros((1, 3, 64), np.float32)
    errors, _, _, counts = _reader.read_packed([data], ranges, *ok.values(), masks, values, tables)
    assert errors == [None] and 0 < sum(counts[0])
    # the portable mask code (no AVX2) writes the same bytes
    script = ("import numpy as np, sys; from dctload import _reader; a = np.load(sys.argv[1]); "
              "m = np.zeros((4, 8), np.uint8); v = np.zeros(256, np.int16); t = np.zeros((1, 3, 64), np.float32); "
              "_reader.read_packed([a['data'].tobytes()], a['ranges'], a['mask_at'], a['mask_row'], a['value_at'], m, v, t); "
              "np.save(sys.argv[2], np.concatenate([m.ravel().view(np.int16), v]))")
    np.savez(tmp_path / "args.npz", data=np.frombuffer(data, np.uint8), ranges=ranges, **ok)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "args.npz"), str(tmp_path / "out.npy")], check=True,
                   env={**os.environ, "DCTLOAD_NO_SIMD": "1"})
    assert np.array_equal(np.load(tmp_path / "out.npy"), np.concatenate([masks.ravel().view(np.int16), values]))
    huge = 2 ** 63 - 16  # offsets whose products or sums would overflow a signed 64-bit check
    for bad in (dict(mask_at=np.full((1, 3), 1, np.int64)), dict(mask_row=np.ones((1, 3), np.int64)),
                dict(value_at=np.full((1, 3), 1, np.int64)), dict(value_at=np.full((1, 3), huge, np.int64)),
                dict(mask_at=np.full((1, 3), huge, np.int64)), dict(mask_row=np.full((1, 3), 2 ** 62 + 1, np.int64)),
                dict(value_at=np.full((1, 3), -1, np.int64))):
        with pytest.raises(ValueError, match="do not fit"):
            _reader.read_packed([data], ranges, *{**ok, **bad}.values(), masks, values, tables)
    with pytest.raises(ValueError, match="int32"):
        _reader.read_packed([data], ranges.astype(np.int64), *ok.values(), masks, values, tables)
    errors, _, _, _ = _reader.read_packed([data], np.array([[[0, 99, 0, 2]] * 3], np.int32), ok["mask_at"],
                                          np.full((1, 3), 2, np.int64), ok["value_at"], np.zeros((200, 8), np.uint8),
                                          np.zeros(99 * 2 * 64, np.int16), tables, sources=["x.jpg"])
    assert isinstance(errors[0], dctload.UnsupportedJPEGError) and errors[0].code == "geometry"

"""Hostile input, threads and memory: never a crash, the same answer from any thread, flat memory."""

from __future__ import annotations

import ctypes
import gc
import os
import pathlib

import numpy as np
import pytest

import dctload
from conftest import SHARED_DATA, encode, photo_like, shared_path


def sample_jpegs(count: int) -> list[bytes]:
    """ImageNet samples where present, else Pillow-encoded stand-ins."""
    folder = SHARED_DATA / "imagenet-sample"
    if folder.is_dir():
        return [p.read_bytes() for p in sorted(folder.glob("*.JPEG"))[:count]]
    return [encode(photo_like(48 + i % 37, 64 + 7 * i % 41, i), quality=70 + i % 30, subsampling=i % 3)
            for i in range(count)]


def assert_read_or_jpeg_error(data: bytes) -> None:
    try:
        image = dctload.read_coefficients(data)
    except dctload.JPEGError:
        return
    for coefs in image.components:  # touch everything: a bad view would fault here
        assert coefs.dtype == np.int16 and int(np.abs(coefs.astype(np.int32)).sum()) >= 0


@pytest.mark.parametrize("index", range(4))
def test_truncations_never_crash(index):
    data = sample_jpegs(4)[index]
    for cut in np.linspace(0, len(data), 40, dtype=int):
        assert_read_or_jpeg_error(data[:cut])


@pytest.mark.parametrize("index", range(4))
def test_bit_flips_never_crash(index):
    data = sample_jpegs(4)[index]
    rng = np.random.default_rng(index)
    for _ in range(150):
        corrupted = bytearray(data)
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
            corrupted[position] ^= 1 << int(rng.integers(0, 8))
        assert_read_or_jpeg_error(bytes(corrupted))


def test_threads_give_the_same_coefficients_as_one():
    datas = sample_jpegs(120)
    sequential = [dctload.read_coefficients(d) for d in datas]
    for threads in (2, 4):
        parallel = dctload.read_batch(datas * 2, num_threads=threads)
        for ours, reference in zip(parallel, sequential * 2):
            for a, b in zip(ours.components, reference.components):
                np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(ours.qt, reference.qt)


def test_batch_errors_are_returned_in_place_or_raised_by_position():
    good = encode(photo_like(20, 20))
    inputs = [good, b"", good, b"\x89PNG not a jpeg", good]
    results = dctload.read_batch(inputs, num_threads=2, errors="return")
    assert [type(r).__name__ for r in results] == [
        "DCTImage", "UnsupportedJPEGError", "DCTImage", "UnsupportedJPEGError", "DCTImage"]
    assert results[1].code == "empty" and results[3].code == "not_jpeg"
    (missing,) = dctload.read_batch(["no/such/file.jpg"], errors="return")
    assert isinstance(missing, FileNotFoundError) and missing.filename == "no/such/file.jpg"
    with pytest.raises(dctload.UnsupportedJPEGError) as info:
        dctload.read_batch(inputs, num_threads=2)
    assert info.value.code == "empty"
    assert dctload.read_batch([], num_threads=2) == []


def test_batch_transform_runs_on_each_image():
    datas = [encode(photo_like(8 * (i + 1), 16)) for i in range(5)] + [b""]
    shapes = dctload.read_batch(datas, num_threads=2, errors="return", transform=lambda im: im.y.shape)
    assert shapes[:5] == [(i + 1, 2, 64) for i in range(5)]
    assert isinstance(shapes[5], dctload.UnsupportedJPEGError)


def test_batch_passes_options_through():
    truncated = encode(photo_like(40, 40))[:300]
    (result,) = dctload.read_batch([truncated], errors="return", strict=True)
    assert isinstance(result, dctload.JPEGError) and result.code == "strict"


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_free_heap() -> bool:
    """glibc's malloc_trim(0): hands freed heap pages back, so RSS shows live memory only."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0)) or True
    except (OSError, AttributeError):
        return False


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc to read resident memory")
def test_100k_mixed_reads_keep_memory_flat_and_close_every_file(tmp_path):
    """100,000 reads (paths and bytes; 19 in 25 valid) in 5 phases of 20,000.

    Bounds: live memory (RSS after glibc's malloc_trim) stays within 96 MiB of the
    start in the later phases, and RSS as such grows by less than 256 MiB between
    the first and last phase; no file descriptor stays open. A leak of one small
    image's coefficients (30 KB) per read would add 600 MB a phase.
    """
    large = sample_jpegs(4)
    small = [encode(photo_like(40 + 8 * i, 56, i), quality=60 + 5 * i, subsampling=i % 3) for i in range(16)]
    bad = [b"", large[0][:2000], large[1][:len(large[1]) // 2], b"\xff\xd8\xff\xe0garbage", b"GIF89a"]
    paths = []
    for i, data in enumerate(small[:8] + bad[:3]):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(data)
    paths.append(tmp_path / "missing.jpg")
    mixed = large + small[9:] + bad[3:] + paths  # 25 inputs: 6 invalid, 12 of them paths
    assert len(mixed) == 25

    def read_all(rounds):
        for _ in range(rounds):
            for result in dctload.read_batch(mixed, num_threads=2, errors="return", fallback="pixels"):
                if not isinstance(result, (dctload.JPEGError, OSError)):
                    result.orientation
        gc.collect()

    read_all(40)  # warm-up: allocator pools, thread pool
    descriptors = open_descriptors()
    trimmed = release_free_heap()
    start = resident_bytes()
    raw, live = [], []
    for _ in range(5):
        read_all(800)
        raw.append(resident_bytes() - start)
        if trimmed:
            release_free_heap()
            live.append(resident_bytes() - start)
    assert open_descriptors() == descriptors
    mib = [f"{r / 2**20:.0f}" for r in raw]
    # glibc keeps freed heap (bounded, reused) when error paths interleave with large
    # images: later phases must not add to it.
    assert raw[-1] - raw[0] < 256 * 2**20, f"RSS kept growing over the phases: {mib} MiB"
    if trimmed:
        # A leak grows in every phase; a transient (pages pinned in a thread's arena at
        # the moment of the trim) does not repeat, hence the minimum of the later phases.
        assert min(live[1:]) < 96 * 2**20, f"live memory grew: {[f'{v / 2**20:.1f}' for v in live]} MiB"


def test_exif_payload_read_from_shared_orientation_file():
    path = shared_path("jpeg-edge/dali-orientation/padlock-406986_640_rotate_90.jpg")
    image = dctload.read_coefficients(path)
    assert image.orientation == 6 and image.exif[:2] in (b"II", b"MM")


FUZZ_REGRESSIONS = sorted((pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "regressions").glob("*"))


@pytest.mark.parametrize("path", FUZZ_REGRESSIONS, ids=[p.name for p in FUZZ_REGRESSIONS])
def test_inputs_the_fuzzer_found_stay_fixed(path):
    """Each file of fuzz/regressions once failed fuzz/fuzz_reader.py: now a JPEGError or a sound image."""
    data = path.read_bytes()
    for options in ({}, {"strict": True}, {"fallback": "pixels"}):
        try:
            image = dctload.read_coefficients(data, **options)
        except dctload.JPEGError:
            continue
        assert all(table.min() >= 1 for table in image.qt)
        assert_read_or_jpeg_error(data)
    fuzz_target().test_one_input(data)  # the whole fuzz target, batch and packet paths included


def fuzz_target():
    """fuzz/fuzz_reader.py as a module (atheris is in requirements-ci; its instrumentation
    leaves modules already imported alone)."""
    import importlib.util

    pytest.importorskip("atheris", reason="atheris (the fuzzing engine) is not installed")
    path = pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_reader.py"
    spec = importlib.util.spec_from_file_location("fuzz_reader", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_zero_quantization_step_is_refused():
    with pytest.raises(dctload.JPEGError, match="component 0 has a zero step"):
        dctload.read_coefficients(regression_file("zero-quantization-step.jpg"))


def regression_file(name: str) -> bytes:
    return (pathlib.Path(__file__).resolve().parents[1] / "fuzz" / "regressions" / name).read_bytes()

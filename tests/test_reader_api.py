"""The reader's public API: inputs, outputs, errors and limits (no shared data needed)."""

from __future__ import annotations

import pathlib
import pickle
import struct

import numpy as np
import pytest

import dctload
from conftest import encode, photo_like


@pytest.fixture(scope="module")
def jpeg420() -> bytes:
    return encode(photo_like(37, 53), quality=85, subsampling=2)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy", "str", "path"])
def test_every_source_type_reads_the_same(jpeg420, tmp_path, kind):
    file = tmp_path / "x.jpg"
    file.write_bytes(jpeg420)
    src = {"bytes": jpeg420, "bytearray": bytearray(jpeg420), "memoryview": memoryview(jpeg420),
           "numpy": np.frombuffer(jpeg420, np.uint8), "str": str(file), "path": file}[kind]
    image = dctload.read_coefficients(src)
    reference = dctload.read_coefficients(jpeg420)
    for ours, theirs in zip(image.components, reference.components):
        np.testing.assert_array_equal(ours, theirs)
    assert image.source == (str(file) if kind in ("str", "path") else None)


def test_shapes_cover_exactly_the_image_blocks(jpeg420):
    image = dctload.read_coefficients(jpeg420)
    # 53x37 at 4:2:0: Y ceil(53/8) x ceil(37/8); chroma ceil(ceil(53/2)/8) x ceil(ceil(37/2)/8).
    assert image.y.shape == (5, 7, 64) and image.cb.shape == (3, 4, 64) and image.cr.shape == (3, 4, 64)
    assert image.y.dtype == np.int16 and image.qt.dtype == np.uint16 and image.qt.shape == (3, 64)
    assert image.sampling == ((2, 2), (1, 1), (1, 1)) and (image.width, image.height) == (53, 37)


def test_natural_order_dc_is_eight_times_the_block_mean():
    flat = np.full((16, 16), 200, np.uint8)
    image = dctload.read_coefficients(encode(flat, quality=100))
    dc = image.dequantize()[0][..., 0]
    np.testing.assert_allclose(dc, 8 * (200 - 128), atol=image.qt[0, 0])
    # A horizontal ramp puts energy at (v=0, u=1), index 1, not at (v=1, u=0), index 8.
    ramp = np.tile(np.linspace(0, 255, 8).astype(np.uint8), (8, 1))
    coefs = dctload.read_coefficients(encode(ramp, quality=100)).y[0, 0]
    assert abs(coefs[1]) > 10 and coefs[8] == 0


def test_rejects_unknown_source_types():
    with pytest.raises(TypeError):
        dctload.read_coefficients(12345)
    with pytest.raises(TypeError):
        dctload.read_coefficients(np.zeros(10, np.float32))


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        dctload.read_coefficients(tmp_path / "absent.jpg")


def test_to_torch_shares_memory(jpeg420):
    import torch

    image = dctload.read_coefficients(jpeg420)
    y, cb, cr = image.to_torch()
    assert y.dtype == torch.int16 and tuple(y.shape) == image.y.shape
    assert y.data_ptr() == image.y.__array_interface__["data"][0]
    image.y[0, 0, 0] = 1234
    assert y[0, 0, 0] == 1234
    gray = dctload.read_coefficients(encode(photo_like(16, 16, channels=1)))
    assert gray.to_torch()[1] is None


def test_dequantize_multiplies_by_each_component_table(jpeg420):
    image = dctload.read_coefficients(jpeg420)
    for ours, coefs, table in zip(image.dequantize(), image.components, image.qt):
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours, coefs.astype(np.float32) * table.astype(np.float32))


def test_arrays_outlive_everything_else(jpeg420):
    y = dctload.read_coefficients(bytearray(jpeg420)).y
    expected = dctload.read_coefficients(jpeg420).y.copy()
    import gc

    gc.collect()
    np.testing.assert_array_equal(y, expected)


def test_read_header_does_not_need_the_scan(jpeg420):
    sos = jpeg420.index(b"\xff\xda")
    header_only = jpeg420[: sos + 2 + struct.unpack(">H", jpeg420[sos + 2: sos + 4])[0]]  # no scan data
    header = dctload.read_header(header_only)
    assert (header["width"], header["height"]) == (53, 37)
    assert header["sampling"] == ((2, 2), (1, 1), (1, 1)) and header["colorspace"] == "YCbCr"
    assert header["progressive"] is False


def test_empty_input():
    with pytest.raises(dctload.UnsupportedJPEGError, match="empty") as info:
        dctload.read_coefficients(b"", name="void.jpg")
    assert info.value.code == "empty" and "void.jpg" in str(info.value)


def test_not_a_jpeg():
    with pytest.raises(dctload.UnsupportedJPEGError, match="Not a JPEG") as info:
        dctload.read_coefficients(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert info.value.code == "not_jpeg"


def test_errors_are_value_errors_and_pickle():
    error = dctload.UnsupportedJPEGError("why", "a.jpg", "lossless")
    assert isinstance(error, ValueError) and isinstance(error, dctload.JPEGError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is dctload.UnsupportedJPEGError
    assert (copy.reason, copy.source, copy.code, str(copy)) == ("why", "a.jpg", "lossless", "a.jpg: why")


def with_declared_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same file with its SOF header claiming another size."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


def test_decompression_bomb_is_refused_before_allocation(jpeg420):
    bomb = with_declared_size(jpeg420, 65000, 65000)
    with pytest.raises(dctload.UnsupportedJPEGError, match="max_pixels") as info:
        dctload.read_coefficients(bomb)  # 4.2 Gpx: would need ~13 GB of coefficients
    assert info.value.code == "too_large"
    with pytest.raises(dctload.UnsupportedJPEGError) as info:  # past libjpeg's own 65500 limit
        dctload.read_coefficients(with_declared_size(jpeg420, 65535, 65535), max_pixels=None)
    assert info.value.code == "too_large"
    with pytest.raises(dctload.UnsupportedJPEGError, match="max_pixels"):
        dctload.read_coefficients(jpeg420, max_pixels=53 * 37 - 1)
    assert dctload.read_coefficients(jpeg420, max_pixels=53 * 37).width == 53
    with pytest.raises(ValueError):
        dctload.read_coefficients(jpeg420, max_pixels=0)


def test_truncated_data_warns_and_strict_raises(jpeg420):
    truncated = jpeg420[: len(jpeg420) * 2 // 3]
    image = dctload.read_coefficients(truncated)
    assert any("Premature end" in w for w in image.warnings)
    with pytest.raises(dctload.JPEGError) as info:
        dctload.read_coefficients(truncated, strict=True, name="cut.jpg")
    assert info.value.code == "strict" and "cut.jpg" in str(info.value)


def test_corrupt_header_is_a_jpeg_error(jpeg420):
    sof = jpeg420.index(b"\xff\xc0")
    broken = jpeg420[: sof + 9] + b"\x07" + jpeg420[sof + 10:]  # 7 components in a 3-component frame
    with pytest.raises(dctload.JPEGError) as info:
        dctload.read_coefficients(broken)
    assert not isinstance(info.value, dctload.UnsupportedJPEGError)


def repeat_first_scan(jpeg: bytes, times: int) -> bytes:
    """A progressive file whose first scan is sent `times` times: legal syntax, endless work."""
    start = jpeg.index(b"\xff\xda")
    i = start + 2 + struct.unpack(">H", jpeg[start + 2: start + 4])[0]
    while not (jpeg[i] == 0xFF and jpeg[i + 1] not in (0x00, *range(0xD0, 0xD8))):
        i += 1
    return jpeg[:start] + jpeg[start:i] * times + b"\xff\xd9"


def test_too_many_scans_is_refused():
    progressive = encode(photo_like(16, 16), progressive=True)
    assert dctload.read_coefficients(repeat_first_scan(progressive, 20)).warnings  # bogus progression
    from dctload import _reader

    with pytest.raises(dctload.JPEGError, match="scans") as info:
        dctload.read_coefficients(repeat_first_scan(progressive, _reader.MAX_SCANS + 5))
    assert info.value.code == "too_many_scans"


def test_rgb_jpeg_is_refused_or_converted():
    pixels = photo_like(21, 30)
    rgb = encode(pixels, quality=95, keep_rgb=True, subsampling=0)
    assert dctload.read_header(rgb)["colorspace"] == "RGB"
    with pytest.raises(dctload.UnsupportedJPEGError, match="fallback") as info:
        dctload.read_coefficients(rgb)
    assert info.value.code == "colorspace"
    image = dctload.read_coefficients(rgb, fallback="pixels")
    assert image.from_pixels and image.colorspace == "RGB" and image.y.shape == (3, 4, 64)
    from PIL import Image
    import io

    from dctload.coefficients import blockwise_idct, rgb_to_ycbcr

    decoded = np.asarray(Image.open(io.BytesIO(rgb)).convert("RGB"))
    ycbcr = rgb_to_ycbcr(decoded)
    for c, coefs in enumerate(image.components):
        plane = blockwise_idct(coefs.astype(np.float64))[:21, :30] + 128
        error = np.abs(plane - ycbcr[..., c])
        assert error.mean() < 0.5 and error.max() < 2.0  # coefficient rounding only


def test_cmyk_jpeg_fallback_is_pillows_image():
    from PIL import Image
    import io

    pixels = photo_like(24, 24)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("CMYK").save(buffer, "JPEG", quality=100)
    with pytest.raises(dctload.UnsupportedJPEGError):
        dctload.read_coefficients(buffer.getvalue())
    image = dctload.read_coefficients(buffer.getvalue(), fallback="pixels")
    assert image.colorspace in ("CMYK", "YCCK") and image.from_pixels
    y = blockwise_y(image)
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").convert("L"), np.float64)
    assert np.abs(y - reference).mean() < 1.5


def blockwise_y(image):
    from dctload.coefficients import blockwise_idct

    return blockwise_idct(image.y.astype(np.float64))[: image.height, : image.width] + 128


def test_fallback_must_be_known(jpeg420):
    with pytest.raises(ValueError):
        dctload.read_coefficients(jpeg420, fallback="rgb")

"""dctload prepare: exact DCT-domain downscaling to any size, written back as JPEG, for a folder."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import dctload
import dctload.transforms as T
from conftest import SHARED_DATA, SKIP_REASON, encode, photo_like
from dctload import coefficients as C
from dctload import prepare as P
from dctload.recipe import Recipe
from dctload.transforms import functional as F
from test_resample import box_axis, pixel_reference

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=SKIP_REASON)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("valid", [3, 5, 13, 16])
def test_padded_axes_repeat_the_last_output_in_c_and_numpy(valid, flip):
    """Outputs past ``valid`` repeat the last valid one (edge replication to whole blocks),
    in the C path and the numpy reference alike, against the float64 pixel chain."""
    image = dctload.read_coefficients(encode(photo_like(47, 61), quality=90, subsampling=0))
    rows = box_axis(0, 47, 16)
    cols = C.AxisMap(0.0, 61 / valid, 16, 0.0, 61.0, flip, valid=valid)
    reference = pixel_reference(image.dequantize(np.float64)[0], rows, cols)
    matrix = C.resize_matrix(cols, 64)
    assert np.array_equal(matrix[valid:], np.repeat(matrix[valid - 1: valid], 16 - valid, axis=0))
    ours = np.empty((64, 2, 2), np.float32)
    C.resample_into(image.y, image.qt[0], rows, cols, ours)
    numpy_path = C.resample([image.y], image.qt[:1], rows, cols)[0]
    scale = np.abs(reference).max()
    assert np.abs(ours - reference).max() < 2e-6 * scale
    assert np.abs(numpy_path - reference).max() < 2e-6 * scale


def test_c_refuses_a_valid_count_beyond_the_size():
    image = dctload.read_coefficients(encode(photo_like(16, 16), quality=90))
    with pytest.raises(ValueError, match="valid outputs"):
        C.resample_into(image.y, image.qt[0], box_axis(0, 16, 8), C.AxisMap(0, 2, 8, 0, 16, valid=9),
                        np.empty((64, 1, 1), np.float32))


def scaled_like_the_pixel_chain(image, new_size, new_sampling) -> list[np.ndarray]:
    """``scale_components`` of ``image``, each plane checked against its own plane
    inverse-DCT'd, resized (:func:`C.scale_axis`'s axes), padded and DCT'd again in float64,
    and sized as libjpeg sizes the components; returns the planes."""
    size = (image.height, image.width)
    planes = C.scale_components(image.components, image.qt, image.sampling, size, new_size, new_sampling)
    h_max, v_max = (max(s[i] for s in image.sampling) for i in (0, 1))
    new_h, new_v = (max(s[i] for s in new_sampling) for i in (0, 1))
    for c, plane in enumerate(planes):
        (h, v), (nh, nv) = image.sampling[c], new_sampling[c]
        rows = C.scale_axis(size[0], new_size[0], v_max / v, (new_v, nv))
        cols = C.scale_axis(size[1], new_size[1], h_max / h, (new_h, nh))
        assert plane.shape[:2] == (-(-rows.valid // 8), -(-cols.valid // 8))  # libjpeg's component blocks
        reference = pixel_reference(image.dequantize(np.float64)[c], rows, cols).transpose(1, 2, 0)
        assert np.abs(plane - reference).max() < 2e-6 * np.abs(reference).max(), (image.source, c)
    return planes


@pytest.mark.parametrize("subsampling,new_sampling", [
    (0, ((2, 2), (1, 1), (1, 1))),   # 4:4:4 -> 4:2:0, the common ImageNet case
    (2, ((2, 2), (1, 1), (1, 1))),   # 4:2:0 kept
    (2, ((1, 1), (1, 1), (1, 1))),   # 4:2:0 -> 4:4:4
    (1, ((2, 1), (1, 1), (1, 1))),   # 4:2:2 kept
])
@pytest.mark.parametrize("new_size", [(37, 53), (64, 80), (9, 150)])
def test_scale_components_equals_the_pixel_domain_chain(subsampling, new_size, new_sampling):
    """Each component equals its own plane inverse-DCT'd, resized over the image's samples
    with the transforms' filter (chroma at JFIF's centred siting), edge-padded to whole
    blocks and DCT'd again; quantized in C exactly as :func:`coefficients.quantize` does."""
    image = dctload.read_coefficients(encode(photo_like(75, 101, seed=3), quality=92, subsampling=subsampling))
    size = (image.height, image.width)
    planes = scaled_like_the_pixel_chain(image, new_size, new_sampling)
    tables = [np.arange(1, 65, dtype=np.uint16)] * 3
    quantized = C.scale_components(image.components, image.qt, image.sampling, size, new_size, new_sampling, tables)
    for plane, q, table in zip(planes, quantized, tables):
        assert q.dtype == np.int16 and q.flags.c_contiguous
        assert np.array_equal(q, C.quantize(np.ascontiguousarray(plane), table))


def test_scale_axis_places_chroma_as_jfif_does():
    """4:4:4 source, 4:2:0 output of 375 -> 256 rows: 128 chroma rows centred on luma
    2j + 1 of the output, padded to 16 blocks, filtered CHROMA_SUPPORT x the luma's width."""
    luma = C.scale_axis(375, 256, 1.0, (2, 2))
    chroma = C.scale_axis(375, 256, 1.0, (2, 1))
    assert (luma.valid, luma.size, luma.support) == (256, 256, 0.0) and luma.scale == 375 / 256
    assert (chroma.valid, chroma.size) == (128, 128) and chroma.scale == 2 * 375 / 256
    assert chroma.support == C.CHROMA_SUPPORT * 375 / 256
    odd = C.scale_axis(500, 341, 2.0, (2, 1))  # 4:2:0 source: chroma samples are 2 luma wide
    assert (odd.valid, odd.size, odd.hi) == (171, 176, 250.0)
    assert odd.centres()[0] == pytest.approx(500 / 341 / 2)  # luma 1 of the output, in source chroma samples


def test_quantize_rounds_halves_away_from_zero():
    values = np.array([[0.5, -0.5, 1.49, -1.5, 2.5, 7.0] + [0.0] * 58], np.float32)
    assert C.quantize(values, np.ones(64))[0, :6].tolist() == [1, -1, 1, -2, 3, 7]
    with pytest.raises(ValueError, match="overflow"):
        C.quantize(np.full((1, 64), 1e6, np.float32), np.ones(64))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255.0 ** 2 / ((a.astype(np.float64) - b) ** 2).mean())


@pytest.mark.parametrize("subsampling", [0, 2])
def test_prepared_files_are_standard_jpegs_close_to_the_pixel_reference(subsampling):
    """What Pillow and torchvision decode is the image resized (torchvision's size rule),
    close to the float reference, and as close as Pillow's own decode-resize-encode."""
    import torchvision.io

    data = encode(photo_like(300, 400, seed=7), quality=96, subsampling=subsampling)
    options = P.Options(short_side=128, quality=90)
    out, action, _ = P.prepare_image(data, options)
    assert action == "scaled"
    image = dctload.read_coefficients(out)
    assert (image.height, image.width) == (128, 170) and image.sampling == ((2, 2), (1, 1), (1, 1))
    assert np.array_equal(image.qt[0], C.standard_tables(90)[0])
    with Image.open(io.BytesIO(out)) as im:
        pillow = np.asarray(im.convert("RGB"))
    decoded = torchvision.io.decode_jpeg(torch.frombuffer(bytearray(out), dtype=torch.uint8)).permute(1, 2, 0).numpy()
    assert pillow.shape == decoded.shape == (128, 170, 3)
    ours = P.psnr_against_reference(data, out)
    theirs = P.psnr_against_reference(data, P.prepare_with_pillow(data, options)[0])
    assert ours > 30 and ours > theirs - 0.3, (ours, theirs)


def test_orientation_and_icc_profile_are_kept():
    base = Image.fromarray(photo_like(200, 240, seed=2))
    exif = Image.Exif()
    exif[0x0112] = 6
    icc = b"\0" * 16 + b"RGB " + b"\0" * 108 + b"a made-up ICC profile" * 5000  # two APP2 markers
    buffer = io.BytesIO()
    base.save(buffer, "JPEG", quality=95, exif=exif, icc_profile=icc)
    out, action, _ = P.prepare_image(buffer.getvalue(), P.Options(max_side=100, quality=85))
    assert action == "scaled"
    assert dctload.read_coefficients(out).orientation == 6
    with Image.open(io.BytesIO(out)) as im:
        assert im.info["icc_profile"] == icc and im.size == (100, 83)


def test_small_files_are_copied_or_rewritten_losslessly():
    data = encode(photo_like(100, 120), quality=95, subsampling=0)
    out, action, _ = P.prepare_image(data, P.Options(short_side=256, quality=50))
    assert action in ("copied", "reoptimized") and len(out) <= len(data)
    before, after = dctload.read_coefficients(data), dctload.read_coefficients(out)
    for a, b in zip(before.components, after.components):
        assert np.array_equal(a, b)
    assert np.array_equal(before.qt, after.qt)
    out, action, _ = P.prepare_image(data, P.Options(short_side=256, quality=50, small="requantize"))
    assert action == "requantized"
    image = dctload.read_coefficients(out)
    assert (image.height, image.width) == (100, 120) and image.sampling == ((2, 2), (1, 1), (1, 1))
    # The identity resize is exact: whole luma blocks as requantize rounds them, but for
    # exact halves (q Q / Q' = k + 1/2), which float32 sees a hair either side; the last
    # block row (100 = 12.5 blocks) holds our padding, not the file's.
    identity = dctload.requantize(before, 50).y[:12].astype(int)
    scaled = before.y[:12].astype(int) * before.qt[0].astype(int)
    step = C.standard_tables(50)[0].astype(int)
    ties = (2 * scaled) % step == 0
    ties &= scaled % step != 0
    differ = image.y[:12] != identity
    assert np.abs(image.y[:12] - identity).max() <= 1 and not (differ & ~ties).any() and ties.sum() > 0


def test_options_are_checked():
    with pytest.raises(ValueError, match="one of short_side"):
        P.Options(short_side=1, max_side=2)
    with pytest.raises(ValueError, match="subsampling"):
        P.Options(short_side=64, subsampling="411")
    with pytest.raises(ValueError, match="quality"):
        P.Options(short_side=64, quality=0)
    with pytest.raises(ValueError, match="tables"):
        P.Options(short_side=64, tables=([0] * 64, [1] * 64))
    assert P.Options(short_side=64, tables=([2] * 64, [3] * 64)).quality is None
    assert P.Options(short_side=64).quality == 90
    assert P.Options(short_side=256).target_size(375, 500) == (256, 341)
    assert P.Options(max_side=512).target_size(1000, 750) == (512, 384)
    assert P.Options(max_side=512).target_size(512, 100) is None


def make_folder(root):
    """Two class folders of 4:4:4 and 4:2:0 photos, a gray one, a CMYK one, a PNG named
    .jpg, a broken file and a text file."""
    for k, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            (root / cls / f"{i}.JPEG").write_bytes(encode(photo_like(180 + 7 * i, 260, seed=10 * k + i), quality=96,
                                                          subsampling=2 * (i % 2)))
    (root / "cat" / "gray.jpg").write_bytes(encode(photo_like(300, 200, channels=1), quality=90))
    cmyk = io.BytesIO()
    Image.fromarray(photo_like(160, 300, seed=5)).convert("CMYK").save(cmyk, "JPEG", quality=90)
    (root / "dog" / "cmyk.jpg").write_bytes(cmyk.getvalue())
    png = io.BytesIO()
    Image.fromarray(photo_like(150, 190, seed=6)).save(png, "PNG")
    (root / "dog" / "png.jpg").write_bytes(png.getvalue())
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xdb" + b"\x13" * 300)
    (root / "notes.txt").write_text("not an image")


def test_prepare_folder_keeps_the_layout_and_reports(tmp_path):
    make_folder(tmp_path / "src")
    options = P.Options(short_side=128, quality=90)
    summary = P.prepare(tmp_path / "src", tmp_path / "dst", options, workers=2, on_error="skip", progress=False)
    assert summary["files"] == 10 and summary["not_jpeg_files_left"] == 1
    assert summary["actions"] == {"scaled": 7, "requantized": 0, "reoptimized": 0, "copied": 0, "pixels": 1,
                                  "skipped": 2}
    assert {r["path"] for r in summary["skipped"]} == {"dog/broken.jpg", "dog/png.jpg"}
    assert [r["path"] for r in summary["through_pixels"]] == ["dog/cmyk.jpg"]
    assert not (tmp_path / "dst" / "dog" / "broken.jpg").exists()
    for path in (tmp_path / "dst").rglob("*.*g"):
        image = dctload.read_coefficients(path) if path.name != "cmyk.jpg" else None
        if image is not None:
            assert min(image.height, image.width) == 128
    m = summary["measured"]
    assert m["files"] == 7 and m["read_speedup"] > 1 and 25 < m["psnr_db_vs_pixel_reference"] < 60
    assert summary["bytes_after"] < summary["bytes_before"]
    assert json.loads((tmp_path / "dst" / P.REPORT).read_text())["actions"] == summary["actions"]
    # the pixel route: the PNG in its place, with on_error="fallback"
    fallback = P.prepare(tmp_path / "src", tmp_path / "fallback", options, workers=1, on_error="fallback",
                         progress=False, measure=0)
    assert [r["path"] for r in fallback["skipped"]] == ["dog/broken.jpg"]
    assert "Pillow" in fallback["skipped"][0]["error"]
    with Image.open(tmp_path / "fallback" / "dog" / "png.jpg") as im:
        assert im.format == "JPEG" and min(im.size) == 128


def test_prepare_raises_naming_the_file(tmp_path):
    make_folder(tmp_path / "src")
    unreadable = P.prepare_file(tmp_path / "src" / "gone.jpg", tmp_path / "out.jpg", "gone.jpg",
                                P.Options(short_side=128), "skip")
    assert unreadable.action == "skipped" and "cannot read it" in unreadable.error
    with pytest.raises(dctload.JPEGError, match="broken.jpg|png.jpg"):
        P.prepare(tmp_path / "src", tmp_path / "dst", P.Options(short_side=128), workers=1, progress=False)
    with pytest.raises(ValueError, match="overlap"):
        P.prepare(tmp_path / "src", tmp_path / "src" / "out", P.Options(short_side=128), progress=False)
    with pytest.raises(ValueError, match="overlap"):
        P.prepare(tmp_path / "src" / "cat", tmp_path / "src", P.Options(short_side=128), progress=False)


def test_a_folder_that_holds_files_is_not_overwritten_unless_asked(tmp_path):
    make_folder(tmp_path / "src")
    (tmp_path / "dst" / "cat").mkdir(parents=True)
    (tmp_path / "dst" / "cat" / "0.JPEG").write_bytes(b"the user's own file")
    options = P.Options(short_side=128)
    with pytest.raises(ValueError, match="holds files but no"):
        P.prepare(tmp_path / "src", tmp_path / "dst", options, on_error="skip", progress=False)
    assert (tmp_path / "dst" / "cat" / "0.JPEG").read_bytes() == b"the user's own file"
    P.prepare(tmp_path / "src", tmp_path / "dst", options, on_error="skip", progress=False, overwrite=True,
              measure=0)
    assert dctload.read_header(tmp_path / "dst" / "cat" / "0.JPEG")["height"] == 128


def test_pillow_failures_on_the_pixel_route_follow_the_policy(tmp_path):
    """A damaged CMYK file (no YCbCr coefficients, and Pillow cannot finish it either)."""
    (tmp_path / "src").mkdir()
    cmyk = io.BytesIO()
    Image.fromarray(photo_like(160, 300, seed=5)).convert("CMYK").save(cmyk, "JPEG", quality=90)
    (tmp_path / "src" / "cmyk.jpg").write_bytes(cmyk.getvalue()[: len(cmyk.getvalue()) // 2])
    (tmp_path / "src" / "ok.jpg").write_bytes(encode(photo_like(160, 200), quality=90))
    for policy in ("skip", "fallback"):
        summary = P.prepare(tmp_path / "src", tmp_path / policy, P.Options(short_side=64), workers=2,
                            on_error=policy, progress=False, measure=0)
        assert [r["path"] for r in summary["skipped"]] == ["cmyk.jpg"] and "Pillow" in summary["skipped"][0]["error"]
        assert summary["actions"]["scaled"] == 1
    with pytest.raises(dctload.JPEGError, match="cmyk.jpg.*Pillow"):
        P.prepare(tmp_path / "src", tmp_path / "raise", P.Options(short_side=64), workers=1, progress=False)


def test_icc_profiles_of_other_colour_spaces_are_dropped():
    rgb_profile = b"\0" * 16 + b"RGB " + b"\0" * 200
    cmyk_profile = b"\0" * 16 + b"CMYK" + b"\0" * 200
    for profile, kept in ((rgb_profile, True), (cmyk_profile, False)):
        buffer = io.BytesIO()
        Image.fromarray(photo_like(120, 160)).save(buffer, "JPEG", quality=90, icc_profile=profile)
        out, _, _ = P.prepare_image(buffer.getvalue(), P.Options(short_side=64))
        with Image.open(io.BytesIO(out)) as im:
            assert (im.info.get("icc_profile") == profile) is kept
    cmyk = io.BytesIO()
    Image.fromarray(photo_like(120, 160)).convert("CMYK").save(cmyk, "JPEG", quality=90, icc_profile=cmyk_profile)
    out, _, _ = P.prepare_with_pillow(cmyk.getvalue(), P.Options(short_side=64))
    with Image.open(io.BytesIO(out)) as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info


def test_an_interrupted_run_resumes_and_redoes_only_what_is_missing(tmp_path, monkeypatch):
    make_folder(tmp_path / "src")
    (tmp_path / "src" / "dog" / "broken.jpg").unlink()
    (tmp_path / "src" / "dog" / "png.jpg").unlink()
    options = P.Options(short_side=100, quality=80)
    first = P.prepare(tmp_path / "src", tmp_path / "dst", options, workers=1, progress=False, measure=0)
    assert first["prepared_now"] == 8
    # an interruption: one output lost, one damaged, the manifest's last line cut
    (tmp_path / "dst" / "cat" / "0.JPEG").unlink()
    (tmp_path / "dst" / "dog" / "1.JPEG").write_bytes(b"half a file")
    manifest = tmp_path / "dst" / P.MANIFEST
    lines = manifest.read_text().splitlines()
    last = json.loads(lines[-1])["path"]
    manifest.write_text("\n".join(lines[:-1] + [lines[-1][:20]]) + "\n")
    done = []
    original = P.prepare_file
    monkeypatch.setattr(P, "prepare_file", lambda *a: done.append(a[2]) or original(*a))
    second = P.prepare(tmp_path / "src", tmp_path / "dst", options, workers=1, progress=False, measure=0)
    assert sorted(done) == sorted({"cat/0.JPEG", "dog/1.JPEG", last})
    assert second["resumed"] == 8 - len(set(done)) and second["actions"]["scaled"] + second["actions"]["pixels"] == 8
    with pytest.raises(ValueError, match="other options"):
        P.prepare(tmp_path / "src", tmp_path / "dst", P.Options(short_side=100, quality=81), progress=False)
    # a changed source is prepared again; a removed one leaves the summary
    (tmp_path / "src" / "cat" / "1.JPEG").write_bytes(encode(photo_like(300, 300, seed=99), quality=90))
    (tmp_path / "src" / "dog" / "2.JPEG").unlink()
    done.clear()
    third = P.prepare(tmp_path / "src", tmp_path / "dst", options, workers=1, progress=False)
    assert done == ["cat/1.JPEG"] and third["files"] == 7 and sum(third["actions"].values()) == 7
    assert dctload.read_header(tmp_path / "dst" / "cat" / "1.JPEG")["width"] == 100
    # killed before the manifest's first line reached the disk: a fresh start
    manifest.write_text("")
    assert P.prepare(tmp_path / "src", tmp_path / "dst", options, workers=1, progress=False,
                     measure=0)["prepared_now"] == 7


def test_the_command_line(tmp_path, capsys):
    make_folder(tmp_path / "src")
    tables = tmp_path / "tables.json"
    dctload.writer.save_tables(tables, torch.full((64,), 3.4), np.full(64, 7))
    code = P.main([str(tmp_path / "src"), str(tmp_path / "dst"), "--max-side", "96", "--tables", str(tables),
                   "--subsampling", "444", "--progressive", "--workers", "2", "--on-error", "skip"])
    out = capsys.readouterr().out
    assert code == 0 and "7 scaled" in out and "2 skipped" in out and "dog/broken.jpg" in out
    image = dctload.read_coefficients(tmp_path / "dst" / "cat" / "0.JPEG")
    assert image.progressive and image.sampling == ((1, 1),) * 3 and max(image.height, image.width) == 96
    assert image.qt[0].tolist() == [3] * 64 and image.qt[1].tolist() == [7] * 64
    assert P.main([str(tmp_path / "src"), str(tmp_path / "dst2"), "--short-side", "96"]) == 1
    err = capsys.readouterr().err  # the first failure the workers report: either bad file
    assert "broken.jpg" in err or "png.jpg" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a tables file"):
        dctload.writer.load_tables(bad)


def test_jpeg_dl_tables_can_be_saved_for_prepare(tmp_path):
    from nets.jpeg_dl import DCTRequantize

    layer = DCTRequantize(quality=75)
    layer.save_tables(tmp_path / "t.json")
    luma, chroma = dctload.writer.load_tables(tmp_path / "t.json")
    assert list(luma) == C.standard_tables(75)[0].tolist() and list(chroma) == C.standard_tables(75)[1].tolist()


@needs_data
def test_the_training_recipe_stays_exact_on_prepared_imagenet_files(tmp_path):
    """On files prepared to odd sizes (4:2:0, partial blocks), the recipe's C resampling
    equals the pixel chain, and the batch path equals the per-image path."""
    src = tmp_path / "src" / "n"
    src.mkdir(parents=True)
    for f in sorted((SHARED_DATA / "imagenet-sample").glob("*.JPEG"))[:8]:
        shutil.copy(f, src / f.name)
    P.prepare(tmp_path / "src", tmp_path / "dst", P.Options(short_side=120, quality=90), workers=1, progress=False,
              measure=0)
    rng = np.random.default_rng(0)
    for path in sorted((tmp_path / "dst").rglob("*.JPEG")):
        image = dctload.read_coefficients(path)
        top, left = int(rng.integers(0, image.height - 64)), int(rng.integers(0, image.width - 64))
        view = F.hflip(F.resized_crop(image, top, left, 64, 64, [32, 32]))
        for c, (coefs, (rows, cols)) in enumerate(zip(image.components, [(view.rows, view.cols)] +
                                                      F.chroma_grids(view))):
            reference = pixel_reference(image.dequantize(np.float64)[c], rows, cols)
            ours = np.empty(reference.shape, np.float32)
            C.resample_into(coefs, image.qt[c], rows, cols, ours)
            assert np.abs(ours - reference).max() < 2e-6 * np.abs(reference).max()
    recipe = T.Compose(Recipe(train=True, size=64).dct_transform().transforms)
    dataset = dctload.DCTImageFolder(tmp_path / "dst", transform=recipe)
    indices, seeds = list(range(len(dataset))), [7 + i for i in range(len(dataset))]
    (y, cbcr), _ = dctload.collate(dataset.load_batch(indices, seeds=seeds))
    samples = []
    for index, seed in zip(indices, seeds):
        torch.manual_seed(seed)
        samples.append(dataset[index])
    (y_ref, cbcr_ref), _ = dctload.collate(samples)
    assert torch.equal(y, y_ref) and torch.equal(cbcr, cbcr_ref)


@needs_data
@pytest.mark.parametrize("name", ["411-non-multiple-4-width.jpg", "410.jpg", "440.jpg", "422-odd-width.jpg",
                                  "420-odd-both.jpg", "2x4.jpg"])
@pytest.mark.parametrize("subsampling", ["420", "keep"])
def test_every_subsampling_prepares_and_stays_exact(name, subsampling):
    """Sources sampled 4:1:1, 4:1:0, 4:4:0, 4:2:2, odd 4:2:0 and 2x4 resize to 80% (chroma
    upsampled where the output is finer) and requantize, and match the pixel chain."""
    data = (SHARED_DATA / "jpeg-edge" / "dali-mixed" / name).read_bytes()
    image = dctload.read_coefficients(data)
    short = int(0.8 * min(image.height, image.width))
    for small in ("keep", "requantize"):
        side = short if small == "keep" else min(image.height, image.width)
        options = P.Options(short_side=side, subsampling=subsampling, small=small)
        out, action, _ = P.prepare_image(data, options)
        assert action == ("scaled" if small == "keep" else "requantized")
        back = dctload.read_coefficients(out)
        assert min(back.height, back.width) == side
        assert back.sampling == (image.sampling if subsampling == "keep" else ((2, 2), (1, 1), (1, 1)))
    new_sampling = image.sampling if subsampling == "keep" else P.SAMPLINGS["420"]
    scaled_like_the_pixel_chain(image, P.Options(short_side=short).target_size(image.height, image.width),
                                new_sampling)


@needs_data
def test_prepared_imagenet_files_rival_pillow_at_the_same_quality():
    """Quality 90 at short side 256 on real 4:4:4 quality-96 files: PSNR against the
    pixel reference within 0.3 dB of Pillow's, at no more than 5% more bytes (the
    benchmark compares at equal bytes: bench/prepare.py)."""
    files = sorted((SHARED_DATA / "imagenet-sample").glob("*.JPEG"))[::25]
    options = P.Options(short_side=256, quality=90)
    datas = [f.read_bytes() for f in files]
    datas = [d for d in datas if options.target_size(dctload.read_header(d)["height"], dctload.read_header(d)["width"])]
    ours = [P.prepare_image(d, options)[0] for d in datas]
    theirs = [P.prepare_with_pillow(d, options)[0] for d in datas]
    ours_db = np.mean([P.psnr_against_reference(d, o) for d, o in zip(datas, ours)])
    theirs_db = np.mean([P.psnr_against_reference(d, o) for d, o in zip(datas, theirs)])
    assert ours_db > theirs_db - 0.3 and sum(map(len, ours)) < 1.05 * sum(map(len, theirs)), (ours_db, theirs_db)

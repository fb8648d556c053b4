"""DCTImageFolder: ImageFolder semantics, DataLoader workers, and bad files by policy."""

from __future__ import annotations

import io
import logging

import pytest
import torch
import torchvision
from PIL import Image

import dctload
import dctload.transforms as T
from conftest import encode, photo_like


@pytest.fixture
def folder(tmp_path):
    """Three classes of small JPEGs; class ``b`` holds a PNG named .jpg, ``c`` garbage."""
    root = tmp_path / "train"
    for c, name in enumerate("abc"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            (root / name / f"{i}.jpg").write_bytes(encode(photo_like(48 + 8 * i, 64, seed=10 * c + i), quality=90))
    png = io.BytesIO()
    Image.fromarray(photo_like(40, 40)).save(png, "PNG")
    (root / "b" / "png-named.jpg").write_bytes(png.getvalue())
    (root / "c" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xdb" + b"\x00" * 10)
    (root / "c" / "notes.txt").write_text("not an image")
    return root


def recipe():
    return T.Compose([T.Resize(32), T.CenterCrop(32), T.ToTensor()])


def test_imagefolder_semantics(folder):
    ours = dctload.DCTImageFolder(folder)
    theirs = torchvision.datasets.ImageFolder(folder)
    assert ours.classes == theirs.classes == ["a", "b", "c"]
    assert ours.class_to_idx == theirs.class_to_idx
    assert ours.samples == theirs.samples and ours.targets == theirs.targets
    image, target = ours[0]
    assert isinstance(image, dctload.DCTImage) and target == 0


def test_raise_names_the_file(folder):
    dataset = dctload.DCTImageFolder(folder, transform=recipe())
    index = [p for p, _ in dataset.samples].index(str(folder / "c" / "garbage.jpg"))
    with pytest.raises(dctload.JPEGError, match="garbage.jpg"):
        dataset[index]


def test_skip_records_every_skipped_file(folder, tmp_path, caplog):
    dataset = dctload.DCTImageFolder(folder, transform=recipe(), on_error="skip", skip_log=tmp_path / "skips.tsv")
    items = [dataset[i] for i in range(len(dataset))]
    assert len(items) == len(dataset)  # a skipped file's slot holds the next readable one
    skipped = {path: kind for path, kind, _ in dataset.skipped()}
    assert skipped == {str(folder / "b" / "png-named.jpg"): "UnsupportedJPEGError",
                       str(folder / "c" / "garbage.jpg"): "JPEGError"}
    with caplog.at_level(logging.WARNING, logger="dctload"):
        assert len(dataset.log_skipped(epoch=0)) == 2
        assert len(dataset.log_skipped(epoch=1)) == 0
    assert "epoch 0: 2 file(s) skipped" in caplog.text and "epoch 1: 0 file(s)" in caplog.text


def test_fallback_decodes_what_pillow_can(folder):
    dataset = dctload.DCTImageFolder(folder, on_error="fallback")
    paths = [p for p, _ in dataset.samples]
    image, target = dataset[paths.index(str(folder / "b" / "png-named.jpg"))]
    assert image.from_pixels and target == 1 and "Pillow" in image.warnings[0]
    image, _ = dataset[paths.index(str(folder / "c" / "garbage.jpg"))]  # Pillow cannot either: skipped
    assert [p for p, _, _ in dataset.skipped()] == [str(folder / "c" / "garbage.jpg")]


def test_dataloader_workers_and_distributed_sampler(folder, tmp_path):
    dataset = dctload.DCTImageFolder(folder, transform=recipe(), on_error="skip", skip_log=tmp_path / "skips.tsv")
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, num_workers=2, persistent_workers=True, pin_memory=True,
        collate_fn=dctload.collate, worker_init_fn=lambda _: torch.set_num_threads(1),
    )
    for epoch in range(2):
        seen = 0
        for (y, cbcr), targets in loader:
            assert y.shape[1:] == (64, 4, 4) and cbcr.shape[1:] == (128, 2, 2) and y.dtype == torch.float32
            seen += len(targets)
        assert seen == len(dataset)
        assert len(dataset.log_skipped(epoch)) == 2  # recorded in the workers, read in the main process
    covered = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        covered += list(sampler)
    assert sorted(covered) == list(range(len(dataset)))


def test_bad_policy_is_refused(folder):
    with pytest.raises(ValueError, match="on_error"):
        dctload.DCTImageFolder(folder, on_error="ignore")


def test_no_record_file_until_something_is_recorded(folder):
    dataset = dctload.DCTImageFolder(folder, transform=recipe(), on_error="skip")
    import os

    assert not os.path.exists(dataset.skip_log)  # an empty record per dataset would pile up in /tmp
    dataset[0]
    assert not os.path.exists(dataset.skip_log) and dataset.skipped() == []
    dataset[[p for p, _ in dataset.samples].index(str(folder / "c" / "garbage.jpg"))]
    assert os.path.exists(dataset.skip_log) and len(dataset.skipped()) == 1
    os.remove(dataset.skip_log)


@pytest.mark.parametrize("batched", [False, True], ids=["per-image", "batch path"])
def test_a_bad_file_after_a_skipped_one_is_recorded_once(tmp_path, batched):
    """Slots 0 and 1 hold bad files: slot 0 walks past file 1 to file 2, and file 1 is
    recorded by its own slot only, each bad file once per pass."""
    root = tmp_path / "data" / "x"
    root.mkdir(parents=True)
    (root / "0.jpg").write_bytes(b"\xff\xd8\xff\xdb" + b"\x00" * 10)
    (root / "1.jpg").write_bytes(b"not a jpeg at all")
    for i in (2, 3):
        (root / f"{i}.jpg").write_bytes(encode(photo_like(40, 40, seed=i), quality=90))
    dataset = dctload.DCTImageFolder(root.parent, transform=recipe(), on_error="skip", skip_log=tmp_path / "s.tsv")
    for _ in range(2):  # two passes
        if batched:
            dataset.load_batch(list(range(4)))
        else:
            for i in range(4):
                dataset[i]
    paths = [p for p, _, _ in dataset.skipped()]
    assert sorted(paths) == sorted([str(root / "0.jpg"), str(root / "1.jpg")] * 2)


def test_files_without_a_folder_scan():
    with pytest.raises(ValueError, match="on_error"):
        dctload.DCTFiles([], on_error="ignore")
    files = dctload.DCTFiles([("a/x.jpg", 2), ("a/y.jpg", 0)])
    assert files.classes == ["0", "1", "2"] and files.targets == [2, 0] and files.root == "a" and len(files) == 2

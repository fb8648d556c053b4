"""nets.train / nets.evaluate / nets.plot on generated shape folders: exact resumption,
a 2-process gloo run, JPEG-DL options, and both a DCT and the RGB model learning."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from dctload import synthetic
from nets import evaluate, plot, train

TINY = ["--size", "32", "--width", "0.125", "--batch-size", "8", "--lr", "0.1", "--no-progress", "--threads", "2",
        "--stats-images", "40"]


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    return synthetic.make_shapes(tmp_path_factory.mktemp("tiny"), num_classes=3, train_per_class=12, val_per_class=5,
                                sizes=(40, 72), seed=1)


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in open(run / "metrics.jsonl")]


def run_train(root, out, *extra):
    assert train.main([str(root), "--output", str(out), *TINY, *extra]) == 0
    return metrics(out)


def test_cpu_loader_refuses_a_hardware_decoder_share(tiny_shapes, tmp_path):
    with pytest.raises(SystemExit, match="hw_decoder_load sets DALI's nvJPEG decoding .*which 'cpu' does not use"):
        run_train(tiny_shapes, tmp_path, "--model", "resnet50", "--epochs", "1", "--hw-decoder-load", "1")
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("model", ["late_concat_rfa_thinner", "resnet50"])
def test_resume_continues_exactly_as_an_uninterrupted_run(tiny_shapes, tmp_path, model):
    common = ["--model", model, "--epochs", "3", "--warmup-epochs", "1", "--jpeg-dl", "--jpeg-quality", "90"]
    straight = run_train(tiny_shapes, tmp_path / "straight", *common, "--workers", "0")
    first = run_train(tiny_shapes, tmp_path / "split", *common, "--workers", "2", "--stop-after", "1")
    assert len(first) == 1
    resumed = run_train(tiny_shapes, tmp_path / "split", *common, "--workers", "1",
                        "--resume", str(tmp_path / "split" / "checkpoint.pt"))
    drop = ("train_images_per_s", "epoch_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed] == \
        [{k: v for k, v in r.items() if k not in drop} for r in straight]
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert (tmp_path / "split" / "best.pt").exists()


def test_resume_refuses_another_model(tiny_shapes, tmp_path):
    run_train(tiny_shapes, tmp_path, "--model", "late_concat", "--epochs", "1", "--workers", "0")
    with pytest.raises(SystemExit, match="holds a late_concat"):
        run_train(tiny_shapes, tmp_path, "--model", "upsampling", "--epochs", "2", "--workers", "0",
                  "--resume", str(tmp_path / "checkpoint.pt"))


def test_amp_channels_last_accumulation_step_schedule_and_channel_subsets(tiny_shapes, tmp_path):
    records = run_train(tiny_shapes, tmp_path, "--model", "downsampling", "--epochs", "2", "--workers", "0",
                        "--amp", "bf16", "--channels-last", "--accumulate", "2", "--schedule", "step",
                        "--milestones", "1", "--channels", "dctnet24", "--label-smoothing", "0.1", "--nesterov",
                        "--tensorboard")
    assert len(records) == 2 and all(r["val_images"] == 15 for r in records)
    # the step schedule divides the rate by 10 after the first epoch (lr scales with global batch 16/256)
    assert records[0]["lr"] == pytest.approx(0.1 * 16 / 256) and records[1]["lr"] == pytest.approx(0.1 * 16 / 2560)
    assert any((tmp_path / "tensorboard").iterdir())


@pytest.mark.parametrize("loader,model,extra", [
    ("coefficients", "late_concat_rfa_thinner", ()), ("nvjpeg", "downsampling", ()),
    ("dali", "late_concat_rfa_thinner", ()), ("dali-hybrid", "upsampling", ()),
    ("dali", "resnet50", ("--hw-decoder-load", "1"))])
def test_gpu_loaders_train_and_validate_every_image(tiny_shapes, tmp_path, loader, model, extra):
    """The GPU paths behind --loader, on torch's CPU device and DALI's CPU pipelines here
    (on CUDA where a GPU is present): a run completes and validation sees every image."""
    if loader.startswith("dali"):
        pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed")
    records = run_train(tiny_shapes, tmp_path, "--model", model, "--epochs", "1", "--workers", "1",
                        "--loader", loader, *extra)
    assert records[0]["val_images"] == 15 and records[0]["train_images"] == 32  # 36 images, batches of 8


def test_evaluate_and_plot_read_a_run(tiny_shapes, tmp_path, capsys):
    records = run_train(tiny_shapes, tmp_path, "--model", "late_concat_rfa_thinner", "--epochs", "2", "--workers", "0")
    capsys.readouterr()
    assert evaluate.main([str(tmp_path / "checkpoint.pt"), "--workers", "0"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["val_images"] == 15 and result["val_acc1"] == pytest.approx(records[-1]["val_acc1"])
    assert result["val_loss"] == pytest.approx(records[-1]["val_loss"], rel=1e-5)
    assert plot.main([str(tmp_path)]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_two_process_gloo_run_covers_every_image_once(tiny_shapes, tmp_path):
    if shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")):
        pytest.skip("torchrun is not installed beside this Python")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "nets.train", str(tiny_shapes), "--output", str(tmp_path), "--model", "late_concat_rfa_thinner",
               "--epochs", "1", "--workers", "0", "--device", "cpu", *TINY[:-4], "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr[-3000:]
    (record,) = metrics(tmp_path)
    assert record["val_images"] == 15  # 8 + 7: strided shards, no padding
    assert record["train_images"] == 32  # 2 ranks x 2 full batches of 8 from 18 images each
    assert (tmp_path / "checkpoint.pt").exists()


def test_dct_and_rgb_models_learn_the_shapes(tmp_path):
    """4 classes (chance 25%), 150 training images each, width 0.25 at 48 px, 8 epochs on
    the CPU: both reach at least 55% top-1 (measured here: 68% DCT, 66% RGB)."""
    root = synthetic.make_shapes(tmp_path / "shapes", num_classes=4, train_per_class=150, val_per_class=50)
    for model in ("late_concat_rfa_thinner", "resnet50"):
        records = run_train(root, tmp_path / model, "--model", model, "--size", "48", "--width", "0.25",
                            "--batch-size", "16", "--lr", "0.2", "--epochs", "8", "--warmup-epochs", "1",
                            "--zero-init-residual", "--crop-scale", "0.35", "1", "--workers", "1",
                            "--stats-images", "300")
        assert records[-1]["val_acc1"] >= 55.0, (model, records[-1])


def test_command_line_dispatches(tmp_path, capsys):
    from dctload import cli

    assert cli.main(["make-shapes", str(tmp_path), "--classes", "2", "--train-per-class", "1", "--val-per-class", "1"]) == 0
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["disc", "stripes"]
    capsys.readouterr()
    assert cli.main(["--help"]) == 0
    listed = capsys.readouterr().out
    for command in ("stats", "make-shapes", "bench", "train", "evaluate", "plot"):  # nets and bench add theirs
        assert f"\n  {command} " in listed, listed
    assert cli.main(["no-such-command"]) == 2 and "unknown command 'no-such-command'" in capsys.readouterr().err
    assert "::" not in train.build_parser().format_help()


def test_on_error_skip_reaches_the_statistics_and_records_each_bad_file_once(tiny_shapes, tmp_path):
    """--on-error skip goes past a damaged file in training, in validation and in the
    statistics step; each pass records it once."""
    root = tmp_path / "data"
    shutil.copytree(tiny_shapes, root)
    for split in ("train", "val"):  # two bad files side by side: the first one's slot walks past the second
        for name in ("00000-a-damaged.JPEG", "00000-b-damaged.JPEG"):
            (root / split / "disc" / name).write_bytes(b"\xff\xd8\xff\xe0 not a JPEG")
    with pytest.raises(Exception, match="00000-a-damaged.JPEG"):  # the default stops, naming the file
        run_train(root, tmp_path / "raise", "--model", "late_concat", "--epochs", "1", "--workers", "0")
    records = run_train(root, tmp_path / "skip", "--model", "late_concat", "--epochs", "1", "--workers", "0",
                        "--on-error", "skip")
    assert records[0]["val_images"] == 17  # each damaged file's slot holds the next readable image
    assert records[0]["val_skipped_files"] == 2  # each bad file once, not again as another's stand-in
    assert 0 <= records[0]["train_skipped_files"] <= 2

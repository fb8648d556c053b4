"""``dctload bench``: the report's arithmetic and plots, one whole ``--quick`` run on a small
folder, a run of an installed copy from another directory, and a clear failure on a
folder with nothing readable. No timing is asserted:
speed targets live in the benchmarks themselves."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import torch

from bench import common
from bench import report as bench
from dctload import synthetic

PNG = b"\x89PNG\r\n\x1a\n"


def section(figures: dict, **extra) -> dict:
    return {"figures": {k: v if isinstance(v, dict) else {"images_per_s": v} for k, v in figures.items()},
            "targets": [], **extra}


def rounds(*seconds: float) -> dict:
    return {"images_per_s": 1 / sorted(seconds)[len(seconds) // 2], "seconds_per_image_per_round": list(seconds)}


def test_stage_rows_take_each_ratio_within_its_section_and_the_plots_are_written(tmp_path):
    sections = {
        "reader": section({"dctload (1 thread)": 600.0, "torchvision decode_jpeg": 400.0}),
        "loaders": section({"dct, 1 workers": 100.0, "rgb, 1 workers": 120.0, "dct, 2 workers": 190.0,
                            "rgb, 2 workers": 200.0},
                           worker_scaling={"dct": {"1": 100.0, "2": 190.0}, "rgb": {"1": 120.0, "2": 200.0}}),
        # rounds of (1.0 s, 3.0 s), (2.0 s, 2.2 s), (1.0 s, 1.5 s): within-round ratios 3.0, 1.1, 1.5
        "training-cpu": section({"late_concat_rfa_thinner + a": 3.0, "late_concat_rfa_thinner + b": rounds(1.0, 2.0, 1.0),
                                 "resnet50 + c": rounds(3.0, 2.2, 1.5)},
                                best={"late_concat_rfa_thinner": "late_concat_rfa_thinner + b",
                                      "resnet50": "resnet50 + c"}),
    }
    rows = bench.stage_figures(sections)
    assert [r["stage"] for r in rows] == ["decode, 1 thread", "train loader, 2 workers", "training step, CPU"]
    assert [r["ratio"] for r in rows] == pytest.approx([1.5, 0.95, 1.5])  # the median ratio, not 1.0 / (1 / 2.2)
    assert rows[2]["dct_images_per_s"] == 1.0 and rows[2]["best_loaders"] == "b / c"
    paths = bench.plot(rows, sections, tmp_path, "test machine")
    assert [p.name for p in paths] == ["stages.png", "workers.png"]
    assert all(p.read_bytes().startswith(PNG) for p in paths)


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    return synthetic.generate(tmp_path_factory.mktemp("bench-data"), num_images=12)


def test_quick_run_on_a_small_folder_writes_the_whole_report(small_folder, tmp_path):
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "bench", str(small_folder), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["quick"] and report["folder"] == str(small_folder)
    machine = report["machine"]
    assert machine["cpu"] and machine["cores_available"] >= 1 and "torch" in machine["versions"]
    stages = {r["stage"]: r for r in report["stages"]}
    expected = {"decode, 1 thread", "train recipe, 1 core", "val recipe, 1 core", "val recipe vs Pillow, 1 core",
                "forward, CPU", "training step, CPU", "prepare a data set, 1 core",
                "train recipe on files prepared to 512, 1 core", "train recipe on files prepared to 256, 1 core"}
    assert expected <= set(stages) and any(s.startswith("train loader, ") for s in stages)
    for row in report["stages"]:
        assert row["dct_images_per_s"] > 0 and row["rgb_images_per_s"] > 0 and row["ratio"] > 0
    for stage in ("forward, CPU", "training step, CPU"):  # one round: the ratio of images/s
        row = stages[stage]
        assert row["ratio"] == pytest.approx(row["dct_images_per_s"] / row["rgb_images_per_s"])
    training = report["sections"]["training-cpu"]
    assert training["files"] == 12 and training["batch"] == 8 and training["cpu_workers"] == [0]
    assert training["folder"] == str(small_folder.resolve())  # neither the cache nor ../shared: as given
    assert set(training["best"]) == {"late_concat_rfa_thinner", "resnet50"}
    assert all(len(f["seconds_per_image_per_round"]) == 1 for f in training["figures"].values())
    assert set(training["figures"]) == {"late_concat_rfa_thinner + dctload (in-process)",
                                        "resnet50 + decode_jpeg/v2 (in-process)"}
    target = next(t for t in report["targets"] if "on DCT >= 1.5x resnet50 on RGB (cpu" in t["target"])
    assert target["measured"] == pytest.approx(stages["training step, CPU"]["ratio"])
    assert sorted(p.name for p in (out / "sections").iterdir()) == [
        "loaders.json", "models-cpu.json", "pipeline.json", "prepare.json", "reader.json", "training-cpu.json"]
    assert (out / "stages.png").read_bytes().startswith(PNG)
    assert (out / "workers.png").read_bytes().startswith(PNG)
    assert "training step, CPU" in done.stdout and "targets:" in done.stdout


def git_status(repo: pathlib.Path) -> str | None:
    """Every changed, new and ignored path of the checkout (build outputs included)."""
    if shutil.which("git") is None or not (repo / ".git").exists():
        return None
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--ignored"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def test_an_installed_copy_benchmarks_from_any_directory_and_leaves_the_source_alone(small_folder, tmp_path):
    """``pip install .``, then ``dctload bench`` in another directory: the console script
    finds the bench package through its entry point, and results land in that directory."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(repo)], check=True, capture_output=True, timeout=600)
    before = git_status(repo)  # after the install, whose build folder setuptools keeps in the checkout
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import bench, dctload, nets; print(bench.__file__, dctload.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert all(path.startswith(str(site)) for path in where.split()), where
    done = subprocess.run([str(site / "bin" / "dctload"), "bench", str(small_folder), "--quick",
                           "--skip", "loaders,models,training,prepare"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((work / "dctload-bench" / "report-quick" / "report.json").read_text())
    assert {"decode, 1 thread", "train recipe, 1 core"} <= {r["stage"] for r in report["stages"]}
    assert git_status(repo) == before  # the run wrote or changed nothing in the checkout, ignored paths included


def test_a_folder_with_nothing_readable_fails_clearly(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    done = subprocess.run([sys.executable, "-m", "bench", str(tmp_path), "--quick",
                           "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no readable JPEG" in done.stderr and "broken.jpg" in done.stderr
    assert "reader.py failed" in done.stderr
    assert not (tmp_path / "report" / "report.json").exists()


class Numbers(torch.utils.data.Dataset):
    """Sample i is (tensor([i]), label 0)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.tensor([float(i)]), 0


def test_the_steady_state_clock_drops_the_loader_backlog_and_refuses_a_short_pass():
    dataset = Numbers(200)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, prefetch_factor=3)
    assert common.prefetch_depth(loader) == 6
    assert common.prefetch_depth(torch.utils.data.DataLoader(dataset, batch_size=2)) == 0
    assert common.worker_headroom(2) >= 1 + common.prefetch_depth(loader)
    seen = []
    run = common.steady_state(loader, 5, lambda inputs, targets: seen.append(inputs[:, 0].tolist()), None)
    assert run() > 0
    # the first batch is consumed (untimed), the next 6 dropped, then 5 timed
    assert seen == [[0.0, 1.0]] + [[2.0 * b, 2.0 * b + 1] for b in range(7, 12)]
    short = common.steady_state(torch.utils.data.DataLoader(Numbers(20), batch_size=2), 12, lambda *batch: None, None)
    with pytest.raises(RuntimeError, match="held 9 of the 12 timed batches"):
        short()

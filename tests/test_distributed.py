"""Data parallelism through paddle.distributed.launch, run here with 2 CPU processes."""
import json
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT, quickstart_args, run_tool

STEP = os.path.join(ROOT, "tests", "dist_step.py")


def launch(nproc, *args, log_dir):
    return subprocess.run([sys.executable, "-m", "paddle.distributed.launch",
                           "--nproc_per_node", str(nproc), "--log_dir", str(log_dir), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_two_processes_by_64_equal_one_process_by_128(tmp_path):
    single = subprocess.run([sys.executable, STEP, str(tmp_path / "one.npz")],
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    double = launch(2, STEP, str(tmp_path / "two.npz"), log_dir=tmp_path / "logs")
    assert double.returncode == 0, (tmp_path / "logs" / "workerlog.0").read_text()[-3000:]
    one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert sorted(one.files) == sorted(two.files)
    assert int(two["sum/samples"]) == 128 and int(two["sum/correct"]) == int(one["sum/correct"])
    np.testing.assert_allclose(two["sum/loss"], one["sum/loss"], rtol=1e-5)
    moved = 0
    for key in one.files:
        if key.startswith("param/"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-6, err_msg=key)
            moved += 1
    assert moved > 60


def test_train_tool_with_two_processes_reports_global_metrics(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    result = run_tool("train", *quickstart_args(
        tiny_cifar10, out, "train.epochs=1", "train.batch_size=32", "data.test_samples=50"),
        "--nproc", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "global batch = 2 processes x 16" in result.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    run = next(r for r in records if r["kind"] == "run")
    epoch = next(r for r in records if r["kind"] == "epoch")
    assert run["processes"] == 2
    # Every test image was evaluated once across the two processes: a single-process
    # evaluation of the saved checkpoint gives the same numbers.
    evaluated = run_tool("eval", "-w", str(out / "latest.pdckpt"), "-o",
                         f"data.data_file={tiny_cifar10}", "--out", str(tmp_path / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((tmp_path / "eval" / "eval_latest_test.json").read_text())
    assert report["samples"] == 50
    assert abs(report["top1"] - epoch["test_top1"]) < 1e-9
    assert abs(report["loss"] - epoch["test_loss"]) < 1e-4
    assert (out / "launch_logs" / "workerlog.1").is_file()

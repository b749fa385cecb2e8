"""Data parallelism through paddle.distributed.launch, run here with 2 CPU processes."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import (ROOT, cmdline_of, environ_of, gone_within, quickstart_args, run_tool,
                      start_tool, wait_for)
from paddle_resnet.cpu import AMD_VENDOR, cpu_vendor, usable_cores
from paddle_resnet.checkpoint import load_checkpoint
from paddle_resnet.speed import native_bf16

pytestmark = [pytest.mark.slow, pytest.mark.launcher]

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


def test_shared_memory_moves_parameters_as_dataparallel_does_bit_for_bit(tmp_path):
    """dist.shared_memory's gradient average against Paddle's DataParallel over gloo: the
    same parameters and sums to the bit after four steps on different shards."""
    saved = {}
    for exchange in ("gloo", "shared"):
        result = launch(2, STEP, str(tmp_path / f"{exchange}.npz"), exchange, "4", "distinct",
                        log_dir=tmp_path / exchange)
        assert result.returncode == 0, (tmp_path / exchange / "workerlog.0").read_text()[-3000:]
        saved[exchange] = np.load(tmp_path / f"{exchange}.npz")
    gloo, shared = saved["gloo"], saved["shared"]
    assert sorted(gloo.files) == sorted(shared.files) and len(gloo.files) > 60
    assert [key for key in gloo.files if not np.array_equal(gloo[key], shared[key])] == []


def test_a_channel_too_large_for_dev_shm_falls_back_to_dataparallel_saying_why(tmp_path):
    result = launch(2, STEP, str(tmp_path / "out.npz"), "oversized", log_dir=tmp_path / "logs")
    log = (tmp_path / "logs" / "workerlog.0").read_text()
    assert result.returncode == 0, log[-3000:]
    assert "note: shared-memory all-reduce unavailable: its shared memory could not be " \
        "opened (" in log and "; averaging gradients by DataParallel over gloo" in log
    assert not [name for name in os.listdir("/dev/shm") if name.startswith("paddle_resnet_")]


def test_train_tool_with_two_processes_reports_global_metrics(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    result = run_tool("train", *quickstart_args(
        tiny_cifar10, out, "train.epochs=1", "train.batch_size=32", "data.test_samples=50"),
        "--nproc", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "global batch = 2 processes x 16" in result.stdout
    assert "2 processes; gradients averaged through shared memory" in result.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    run = next(r for r in records if r["kind"] == "run")
    epoch = next(r for r in records if r["kind"] == "epoch")
    assert run["processes"] == 2
    # The workers get their arguments without --nproc; the record keeps what was typed.
    assert run["command"].startswith("python tools/train.py -c configs/quickstart.yaml")
    assert run["command"].endswith("data.test_samples=50 --nproc 2")
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


# --- the default path: one process per core, as a user runs tools/train.py -------------
# (batch 64: --nproc auto keeps at least 32 images per process)
DEFAULT_RUN = ("train.batch_size=64", "train.epochs=3", "train.log_every=1",
               "data.test_samples=50")


def read_until(process, marker: str, seen: list) -> None:
    seen.extend(wait_for(process, marker))


def model_state(path):
    return {k: v.numpy() for k, v in load_checkpoint(str(path))["model"].items()}


needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="the default is 1 process")


@needs_two_cores
@pytest.mark.parametrize("signum, marker, speed", [
    (signal.SIGINT, "epoch 2/3  iter 2/", ()),
    (signal.SIGTERM, "epoch 1/3 done", ()),
    # the block path the default does not take here (fused blocks are the default with bf16)
    (signal.SIGTERM, "epoch 1/3 done", ("speed.fused_block=false",) if native_bf16()
     else ("speed.fused_block=true",)),
    # DenseNet's own fused operators (fused_norm_conv.py), the default for it with bf16
    (signal.SIGTERM, "epoch 1/3 done", ("model.name=densenet40_k12",))],
    ids=["sigint", "sigterm", "sigterm-other-block-path", "sigterm-densenet"])
def test_default_run_interrupted_and_resumed_equals_uninterrupted(signum, marker, speed,
                                                                  tiny_cifar10, tmp_path):
    run = DEFAULT_RUN + speed
    whole = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "whole", *run))
    assert whole.returncode == 0, whole.stderr[-3000:]
    lines = whole.stdout.splitlines()
    # the hardware, before anything else but a first run's compile line; then the speed
    first = next(i for i, line in enumerate(lines)
                 if not line.startswith(("compiling ", "loading ")))
    assert lines[first].startswith("cpu: ")
    # the default averages gradients through shared memory, so resume is checked on it
    assert lines[first].endswith(f"; {usable_cores()} processes; gradients averaged through "
                                 "shared memory")
    precision = " (bf16 inputs)" if native_bf16() else ""
    fused = ("; basic blocks: one operator each"
             if (native_bf16() and not speed) or speed == ("speed.fused_block=true",) else "")
    if speed == ("model.name=densenet40_k12",):
        fused = "; dense layers and transitions: one operator each" if native_bf16() else ""
    assert lines[first + 1].startswith(f"convolution: oneDNN{precision}{fused}; layout NHWC; "
                                       "1 thread per process; MKL fast path ")
    # every training process keeps its freed memory (speed/malloc.py), and says so
    assert lines[first + 1].endswith("; glibc memory reuse on")
    assert whole.stderr == ""  # neither the launcher's nor Paddle's notices reach the user

    args = quickstart_args(tiny_cifar10, tmp_path / "cut", *run)
    process, seen = start_tool(*args), []
    read_until(process, marker, seen)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, "".join(seen) + out + err
    assert "resume with the same command plus --resume" in out
    state = load_checkpoint(str(tmp_path / "cut" / "latest.pdckpt"))
    assert len(state["running_statistics"]) == usable_cores()
    resumed = run_tool("train", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    a, b = model_state(tmp_path / "whole" / "latest.pdckpt"), \
        model_state(tmp_path / "cut" / "latest.pdckpt")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    # Logs and metrics are written once: one record per logged step, none twice.
    steps = [json.loads(line)["global_step"] for line in
             (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "train_iter"]
    assert steps == sorted(set(steps)) == list(range(1, len(steps) + 1))


@needs_two_cores
@pytest.mark.skipif(cpu_vendor() != AMD_VENDOR, reason="MKL's fast path is for AMD")
def test_the_default_run_has_mkl_fast_path_and_keeps_no_copy_of_the_environment(
        tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    secret = "s3cr3t-token-" + os.urandom(4).hex()
    env = dict(os.environ, PADDLE_RESNET_TEST_TOKEN=secret)
    result = run_tool("train", *quickstart_args(tiny_cifar10, out, "train.epochs=1",
                                                "train.batch_size=64"), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(p.name for p in (out / "launch_logs").iterdir())
    assert "launcher.log" in logs and f"workerlog.{usable_cores() - 1}" in logs
    assert not [n for n in logs if n.startswith(("backup_env", "envlog", "default."))], logs
    for path in out.rglob("*"):
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "MKL fast path on" in next(r for r in records if r["kind"] == "run")["speed"]


def test_errors_in_the_workers_are_one_line(tiny_cifar10, tmp_path):
    result = run_tool("train", *quickstart_args(tmp_path / "missing.tar.gz", tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: data.data_file")
    assert "Traceback" not in result.stdout + result.stderr


@needs_two_cores
def test_a_killed_worker_stops_the_run_without_hanging(tiny_cifar10, tmp_path):
    args = quickstart_args(tiny_cifar10, tmp_path / "run", "train.batch_size=64",
                           "train.epochs=50", "train.log_every=1")
    process, seen = start_tool(*args), []
    read_until(process, "epoch 2/50  iter 1/", seen)
    worker = next(pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                  if environ_of(pid).get("PADDLE_TRAINER_ID") == "1"
                  and str(tmp_path) in cmdline_of(pid))
    os.kill(worker, signal.SIGKILL)
    out, err = process.communicate(timeout=120)  # the launcher stops rank 0 too
    assert process.returncode != 0
    assert err.count("\n") == 1, err
    # The launcher may see rank 0 fail first: it aborts when rank 1 vanishes mid-allreduce.
    assert err.startswith(("error: training process 1 of 2 was killed by SIGKILL",
                           "error: training process 1 of 2 died without a message")), err
    assert f"its log is {tmp_path / 'run' / 'launch_logs' / 'workerlog.1'}" in err
    assert not gone_within(tmp_path, 5), "a process of the run is left"
    assert (tmp_path / "run" / "latest.pdckpt").is_file()  # epoch 1's, kept


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_launchers_on_localhost_train_as_two_nodes(tiny_cifar10, tmp_path):
    """docs/distributed.md's several-machines command, both 'machines' on localhost."""
    out = tmp_path / "run"
    master = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "paddle.distributed.launch", "--master", master, "--nnodes",
         "2", "--rank", str(rank), "--nproc_per_node", "1", "--log_dir",
         str(tmp_path / f"node{rank}"), os.path.join(ROOT, "tools", "train.py"),
         *quickstart_args(tiny_cifar10, out, "train.epochs=1", "train.batch_size=32",
                          "data.test_samples=50")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        for rank in range(2)]
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)[-4000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert next(r for r in records if r["kind"] == "run")["processes"] == 2
    assert "global batch = 2 processes x 16" in \
        (tmp_path / "node0" / "workerlog.0").read_text()
    evaluated = run_tool("eval", "-w", str(out / "latest.pdckpt"), "-o",
                         f"data.data_file={tiny_cifar10}", "--out", str(tmp_path / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    epoch = next(r for r in records if r["kind"] == "epoch")
    report = json.loads((tmp_path / "eval" / "eval_latest_test.json").read_text())
    assert abs(report["top1"] - epoch["test_top1"]) < 1e-9

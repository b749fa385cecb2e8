"""A default (multi-process) run as one unit under a user's hands: whatever ends the
command ends every process of the run, one live run per output directory, progress from
the first iteration, and a stop said once."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import (ROOT, environ_of, gone_within, processes_naming, quickstart_args,
                      start_tool, wait_for)
from paddle_resnet.checkpoint import load_checkpoint
from paddle_resnet.cpu import usable_cores
from paddle_resnet.speed import native_bf16
from paddle_resnet.speed.onednn_build import unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.launcher]

needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="the default is 1 process")
# batch 64: --nproc auto keeps at least 32 images per process
LONG_RUN = ("train.batch_size=64", "train.epochs=40", "train.log_every=1",
            "data.test_samples=50")


@needs_two_cores
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP])
def test_ending_the_command_ends_every_process_of_the_run(signum, tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    process = start_tool(*quickstart_args(tiny_cifar10, out, *LONG_RUN))
    wait_for(process, "epoch 2/40  iter 1/")
    # this process, the launcher, the workers
    assert len(processes_naming(f"output_dir={out}")) == 2 + usable_cores()
    process.send_signal(signum)
    left = gone_within(f"output_dir={out}", 20)
    assert not left, f"still alive after {signal.Signals(signum).name}: {left}"
    process.communicate(timeout=10)
    assert process.returncode == -signum if signum == signal.SIGKILL else 128 + signum
    # The workers were stopped with SIGTERM, so even a SIGKILL leaves the resumable
    # checkpoint of where the run stopped, as its log says, not only the one of the last
    # epoch. An epoch here is 3 steps: the stop lands mid-epoch or at an epoch's end.
    progress = load_checkpoint(str(out / "latest.pdckpt"))["progress"]
    stopped = re.search(r"interrupted at epoch (\d+), iteration (\d+); saved",
                        (out / "train.log").read_text())
    assert stopped is not None
    assert (progress["epoch"] + 1, progress["batch_index"]) == tuple(map(int, stopped.groups()))
    assert progress["global_step"] > 3  # past epoch 1, the last epoch saved when signalled


@needs_two_cores
def test_a_second_run_into_a_live_directory_is_refused_and_the_first_finishes_intact(
        tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    # Long enough to outlive the three refused attempts on a loaded machine: with 3 epochs
    # the first run could finish before the last attempt, which then trained.
    epochs = 40
    args = quickstart_args(tiny_cifar10, out, "train.batch_size=64", f"train.epochs={epochs}",
                           "train.log_every=1", "data.test_samples=50")
    first = start_tool(*args)
    wait_for(first, f"epoch 1/{epochs}  iter 1/")
    for extra in ([], ["--resume"], ["--overwrite"]):
        began = time.monotonic()
        second = subprocess.run([sys.executable, "tools/train.py", *args, *extra],
                                capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr == (f"error: output_dir {out} is in use by a live run (PID "
                                 f"{first.pid}, started {second.stderr.split('started ')[1]}")
        assert second.stdout == ""
        assert time.monotonic() - began < 30  # at once: no data loaded, nothing compiled
    rest, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records].count("run") == 1
    steps = [r["global_step"] for r in records if r["kind"] == "train_iter"]
    assert steps == list(range(1, epochs * 3 + 1))  # 200 images / 64 = 3 steps per epoch


@needs_two_cores
def test_progress_from_the_first_iteration_and_a_short_header(tiny_cifar10, tmp_path):
    # log_every far beyond the run: only the status line can show progress. Batch 2 makes
    # the epoch 100 steps (~2 s): at batch 32 its 6 steps could all end inside one of the
    # launcher's polls, and the epoch's log line rightly supersedes the step-1 status.
    process = start_tool(*quickstart_args(tiny_cifar10, tmp_path / "run", "train.batch_size=2",
                                     "train.epochs=4", "train.log_every=1000",
                                     "data.test_samples=50"), "--nproc", str(usable_cores()))
    seen = wait_for(process, "epoch 1/4  iter 1/100  loss ")
    assert seen[-1].endswith("(timing the first steps)\n")
    header = [line for line in seen[:-1] if not line.startswith("compiling ")]
    seen = wait_for(process, "  iter ")  # a second later
    assert " img/s  elapsed 00:00:" in seen[-1] and "eta epoch " in seen[-1] \
        and "eta run " in seen[-1]
    # One note line, and only where this CPU cannot take the default path in full
    # (no bf16 kernels, or no oneDNN operator): it names why the run is slower.
    speed_note = ["note:"] if not native_bf16() or unavailable_reason("cpu") else []
    # and one more here: --nproc gives each process one image of the batch, which BN
    # normalises alone (--nproc auto would keep 32 or more)
    assert [line.split(" ", 1)[0] for line in header] == \
        ["loading", "cpu:", "convolution:", *speed_note, "note:", "model", "recipe:"]
    assert f"note: each of the {usable_cores()} processes normalises BatchNorm over its 1 " \
        "image of the batch" in header[-3]
    assert "full config in" in header[-1]
    process.communicate(timeout=300)
    assert process.returncode == 0


@needs_two_cores
def test_a_second_ctrl_c_stops_every_process_at_once(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    process = start_tool(*quickstart_args(tiny_cifar10, out, *LONG_RUN))
    wait_for(process, "epoch 2/40  iter 1/")
    # Frozen workers cannot finish their step: only "at once" can stop them now.
    workers = [pid for pid in processes_naming(f"output_dir={out}")
               if "PADDLE_TRAINER_ID" in environ_of(pid)]
    assert len(workers) == usable_cores()
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)  # two presses, not one signal twice (which the kernel may merge)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert not gone_within(f"output_dir={out}", 5)
    assert stdout.count("Ctrl-C: stopping the") == 1
    assert stdout.count("second Ctrl-C: stopped every process at once; the last checkpoint, "
                        f"{out / 'latest.pdckpt'}, resumes with --resume") == 1
    assert stderr == ""
    load_checkpoint(str(out / "latest.pdckpt"))  # epoch 1's, whole

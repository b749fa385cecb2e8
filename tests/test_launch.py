"""paddle_resnet/launch.py: how many processes by default, and what reaches the console."""
import io

import pytest

from conftest import run_tool
from paddle_resnet import launch
from paddle_resnet.console import Console
from paddle_resnet.errors import ConfigError


def test_nproc_is_auto_or_a_positive_count():
    assert launch.parse_nproc("auto") is None
    assert launch.parse_nproc("3") == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match=f"--nproc {bad}: expected auto or a whole number"):
            launch.parse_nproc(bad)


@pytest.mark.parametrize("cores, batch, expected", [
    (2, 128, 2), (3, 128, 2), (4, 128, 4), (1, 128, 1), (2, 64, 2), (2, 150, 2),
    # at least 32 images of the batch per process: 64 cores train batch 128 in 4 processes
    # of 32, not 64 of 2; batch 150 in 3 of 50 (6 would leave 25 each)
    (64, 128, 4), (8, 150, 3), (16, 64, 2), (4, 50, 1), (4, 16, 1)])
def test_auto_is_one_process_per_core_that_divides_the_batch(cores, batch, expected,
                                                             monkeypatch):
    monkeypatch.setattr(launch, "usable_cores", lambda: cores)
    assert launch.default_processes("cpu", batch) == expected
    assert launch.default_processes("gpu:0", batch) == 1


def test_the_console_shows_rank_0_without_its_error_line(tmp_path):
    log = tmp_path / "workerlog.0"
    log.write_text("a line of an earlier run\n")
    shown = io.StringIO()
    follower = launch._Follower(str(log), Console(shown, live=False))
    with open(log, "a") as f:
        f.write("epoch 1/2  iter 5/10\nerror: the fix is ...\nhalf a li")
    follower.poll()
    assert shown.getvalue() == "epoch 1/2  iter 5/10\n"  # the unfinished line waits
    with open(log, "a") as f:
        f.write("ne\nlast words")
    follower.poll(final=True)
    assert shown.getvalue() == "epoch 1/2  iter 5/10\nhalf a line\nlast words\n"
    assert follower.error_line() == "error: the fix is ..."


def test_a_bad_nproc_is_one_line(tmp_path):
    result = run_tool("train", "-c", "configs/quickstart.yaml", "--nproc", "0")
    assert result.returncode == 2
    assert result.stderr == "error: --nproc 0: expected auto or a whole number of at least 1\n"


LAUNCHER_FAILURE = ("LAUNCH ERROR 2026-12-01 13:15:38,974 Container failed !!!\n"
                    "Container rank 1 status failed cmd ['python', '-u', 'tools/train.py'] "
                    "code -9 log /runs/r/launch_logs/workerlog.1\n")


def test_a_worker_that_died_silently_is_named_with_its_log(tmp_path):
    log = tmp_path / "launcher.log"
    log.write_text("an earlier launch: " + LAUNCHER_FAILURE.replace("rank 1", "rank 0"))
    start = log.stat().st_size
    assert launch.failed_worker(str(log), start, 2) is None
    with open(log, "a") as f:
        f.write(LAUNCHER_FAILURE)
    assert launch.failed_worker(str(log), start, 2) == (
        "error: training process 1 of 2 was killed by SIGKILL (the kernel does this when "
        "memory runs out) without a message; its log is /runs/r/launch_logs/workerlog.1; "
        "the launcher stopped the others; the last checkpoint resumes with --resume")
    log.write_text(LAUNCHER_FAILURE.replace("code -9", "code 3"))
    assert "training process 1 of 2 exited with status 3 without" in \
        launch.failed_worker(str(log), 0, 2)


def test_a_worker_that_aborted_for_a_vanished_peer_is_not_the_one_named(tmp_path):
    (tmp_path / "workerlog.0").write_text("terminate called after throwing an instance of "
                                          "'gloo::IoException'\n")
    (tmp_path / "workerlog.1").write_text("epoch 2/50  iter 1/6\n")
    log = tmp_path / "launcher.log"
    log.write_text(LAUNCHER_FAILURE.replace("rank 1", "rank 0").replace("code -9", "code -6")
                   .replace("/runs/r/launch_logs/workerlog.1", str(tmp_path / "workerlog.0")))
    assert launch.failed_worker(str(log), 0, 2) == (
        "error: training process 1 of 2 died without a message (killed from outside, or for "
        f"memory), and process 0 lost its connection to it; its log is "
        f"{tmp_path / 'workerlog.1'}; the launcher stopped the others; the last checkpoint "
        "resumes with --resume")


def test_a_worker_that_died_on_a_python_exception_is_named_with_it(tmp_path):
    worker_log = tmp_path / "workerlog.0"
    worker_log.write_text(
        "epoch 1/2  iter 1/6\nTraceback (most recent call last):\n"
        '  File "tools/train.py", line 9, in <module>\n    main()\n'
        "FileNotFoundError: [Errno 2] No such file or directory: 'x.json'\n")
    log = tmp_path / "launcher.log"
    log.write_text(LAUNCHER_FAILURE.replace("rank 1", "rank 0").replace("code -9", "code 1")
                   .replace("/runs/r/launch_logs/workerlog.1", str(worker_log)))
    assert launch.failed_worker(str(log), 0, 2) == (
        "error: training process 0 of 2 stopped on FileNotFoundError: [Errno 2] No such file "
        f"or directory: 'x.json'; its log is {worker_log}; the launcher stopped the others; "
        "the last checkpoint resumes with --resume")


@pytest.mark.parametrize("world, batch, sync_bn, noted", [
    (16, 128, False, True), (4, 128, False, False), (2, 32, False, True), (1, 8, False, False),
    (16, 128, True, False)])
def test_a_run_notes_batchnorm_over_a_small_share_of_the_batch(world, batch, sync_bn, noted):
    from paddle_resnet.config import load_config
    from paddle_resnet.device import Processes
    from paddle_resnet.engine.header import small_share_note
    cfg = load_config(None, [f"train.batch_size={batch}", f"dist.sync_bn={str(sync_bn).lower()}"])
    note = small_share_note(cfg, Processes(rank=0, world=world))
    assert (note is not None) is noted
    if noted:
        assert note == (f"each of the {world} processes normalises BatchNorm over its "
                        f"{batch // world} images of the batch, whose statistics get noisy below "
                        "32 (docs/distributed.md); --nproc auto keeps 32 or more")

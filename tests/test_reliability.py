"""Bad input, interrupts, crashes and full disks: nothing written is lost."""
import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, quickstart_args, run_tool
from paddle_resnet.config import SCHEMA, Config, load_config
from paddle_resnet import checkpoint as ckpt
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.errors import CheckpointError, ConfigError, UserError


def train_args(archive, out, *extra):
    return quickstart_args(archive, out, "data.train_samples=160", "data.test_samples=32",
                           "train.batch_size=8", "train.log_every=1",
                           "train.epochs=2") + list(extra)


def final_parameters(path):
    return {k: v.numpy() for k, v in ckpt.load_checkpoint(path)["model"].items()}


def assert_same_parameters(a_path, b_path):
    a, b = final_parameters(a_path), final_parameters(b_path)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tiny_cifar10, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    result = run_tool("train", *train_args(tiny_cifar10, out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_epoch_then_resume_matches_uninterrupted(signum, tiny_cifar10, tmp_path,
                                                            uninterrupted):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "tools/train.py", *train_args(tiny_cifar10, out)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    for line in process.stdout:
        if "epoch 2/2  iter 3/" in line:
            process.send_signal(signum)
            break
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    # one line that it stops, one that says where the checkpoint is; nothing on stderr
    name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
    assert stdout.count(f"{name}: stopping ") == 1
    assert stdout.count("after this step with a resumable checkpoint") == 1
    assert stdout.count("resume with the same command plus --resume") == 1
    assert stderr == ""
    progress = ckpt.load_checkpoint(str(out / "latest.pdckpt"))["progress"]
    assert progress["epoch"] == 1 and 3 <= progress["batch_index"] < 20

    resumed = run_tool("train", *train_args(tiny_cifar10, out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert_same_parameters(str(uninterrupted / "latest.pdckpt"), str(out / "latest.pdckpt"))


def test_second_sigint_quits_at_once(tiny_cifar10, tmp_path):
    trainer = Trainer(load_config(None, [f"data.data_file={tiny_cifar10}",
                                         f"output_dir={tmp_path / 'run'}"]))

    class Log:
        def info(self, message, console=True):
            pass

    trainer.log = Log()
    trainer.stops._on_signal(signal.SIGINT, None)
    assert trainer.stops.signum == signal.SIGINT
    trainer.stops._on_signal(signal.SIGTERM, None)  # the launcher's repeated SIGTERM
    assert trainer.stops.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        trainer.stops._on_signal(signal.SIGINT, None)


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import paddle
    sys.path.insert(0, {root!r})
    from paddle_resnet import checkpoint as ckpt
    weights = paddle.to_tensor(np.zeros((2_000_000,), dtype="float32"))
    i = 0
    while True:
        ckpt.save_checkpoint({path!r}, {{"model": {{"w": weights + i}}, "step": i}})
        print(i, flush=True)
        i += 1
""")


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.029, 0.047])
def test_sigkill_while_writing_leaves_previous_checkpoint(delay, tmp_path):
    path = str(tmp_path / "latest.pdckpt")
    process = subprocess.Popen([sys.executable, "-c", WRITER.format(root=ROOT, path=path)],
                               stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if int(line) >= 2:
            break
    time.sleep(delay)
    process.kill()
    process.wait()
    state = ckpt.load_checkpoint(path)
    assert state["step"] >= 2
    assert float(state["model"]["w"][0]) == state["step"]
    leftovers = [n for n in os.listdir(tmp_path) if n != "latest.pdckpt"]
    assert all(n.startswith(ckpt.TEMP_MARK) for n in leftovers)


def failing_open(fail_after: int):
    calls = {"n": 0}
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.f, name)

    def fake(path, mode="r", *args, **kwargs):
        calls["n"] += 1
        f = real_open(path, mode, *args, **kwargs)
        return Full(f) if "w" in mode and calls["n"] > fail_after else f

    return fake


def test_disk_full_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.pdckpt")
    ckpt.save_checkpoint(path, {"model": {"w": paddle.ones([3])}, "step": 1})
    monkeypatch.setattr(ckpt, "open", failing_open(0), raising=False)
    with pytest.raises(CheckpointError, match="No space left on device; the previous checkpoint "
                                              "is unchanged"):
        ckpt.save_checkpoint(path, {"model": {"w": paddle.zeros([3])}, "step": 2})
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["latest.pdckpt"]


def test_disk_full_during_training_ends_the_run_cleanly(tiny_cifar10, tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={out}",
                             "train.epochs=2", "train.batch_size=64", "data.test_samples=32"])
    monkeypatch.setattr(ckpt, "open", failing_open(1), raising=False)  # epoch 1 saves fine
    with pytest.raises(UserError, match="cannot write checkpoint.*No space left"):
        Trainer(cfg).fit()
    monkeypatch.undo()
    assert ckpt.load_checkpoint(str(out / "latest.pdckpt"))["progress"]["epoch"] == 1


def test_unwritable_output_dir(tiny_cifar10, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_tool("train", *train_args(tiny_cifar10, blocker / "run"))
    assert result.returncode == 2
    assert "is not writable" in result.stderr and "output_dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_path_that_is_a_directory(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path))


def test_eval_refuses_missing_or_foreign_checkpoints(tmp_path):
    missing = run_tool("eval", "-w", str(tmp_path / "none.pdckpt"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    foreign = tmp_path / "weights.pdparams"
    paddle.save(paddle.nn.Linear(2, 2).state_dict(), str(foreign))
    result = run_tool("eval", "-w", str(foreign))
    assert result.returncode == 1 and "not a paddle_resnet checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


keys = st.one_of(st.sampled_from(sorted(SCHEMA)),
                 st.sampled_from(sorted(SCHEMA)).map(lambda k: k[:-1]),
                 st.text(alphabet="abcdefghijklmnopqrstuvwxyz._=", min_size=1, max_size=15))
values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=10), st.lists(st.floats(0, 1), max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=st.dictionaries(st.sampled_from(["model", "data", "train", "optimizer",
                                              "schedule", "seed", "junk"]),
                            st.one_of(values, st.dictionaries(st.text(max_size=12), values,
                                                              max_size=3)), max_size=4),
       overrides=st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, values),
                                    st.text(max_size=20)), max_size=3))
def test_any_config_gives_a_config_or_a_one_line_error(tmp_path_factory, tree, overrides):
    import yaml
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(tree))
    try:
        cfg = load_config(str(path), overrides)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(cfg, Config)


def test_an_empty_or_all_comment_config_is_refused(tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing but a comment\n")
    done = run_tool("train", "-c", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {config}: the config file is empty; give at least "
                                   "model.name, or start from one of configs/ (e.g. "
                                   "configs/quickstart.yaml)")


def test_a_batch_larger_than_the_training_set_is_refused(tiny_cifar10, tmp_path):
    done = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "run",
                                              "train.batch_size=100000"), "--nproc", "1")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: train.batch_size = 100000 is larger than the 200 "
                                   "training images, so an epoch would be one short step; lower "
                                   "train.batch_size or raise data.train_samples")
    assert not (tmp_path / "run").exists()  # nothing was written, not even the directory


def test_a_checkpoint_directory_is_named_as_one(tiny_cifar10, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.pdckpt").write_bytes(b"")
    (run / "best.pdckpt").write_bytes(b"")
    expected = (f"error: checkpoint {run} is a directory, not a .pdckpt file; it holds "
                f"best.pdckpt, latest.pdckpt: pass e.g. {run / 'latest.pdckpt'}\n")
    evaluated = run_tool("eval", "-w", str(run))
    assert (evaluated.returncode, evaluated.stderr) == (1, expected)
    resumed = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "new"),
                       "--resume", str(run))
    assert (resumed.returncode, resumed.stderr, resumed.stdout) == (1, expected, "")
    empty = run_tool("eval", "-w", str(tmp_path / "new"))
    assert empty.returncode == 1 and "does not exist" in empty.stderr  # refused: not made


@pytest.mark.parametrize("overrides, extra, message", [
    (["speed.amp=O1"], [], "error: speed.amp = O1 needs a GPU (Paddle's auto_cast only acts "
                           "on CUDA places) but the device is cpu; set speed.amp=off"),
    (["dist.sync_bn=true"], [], "error: dist.sync_bn needs GPUs: Paddle has no CPU kernel for "
                                "sync_batch_norm; set -o dist.sync_bn=false on the CPU"),
    (["eval.engine=dygraph", "eval.precision=bfloat16"], [],
     "error: eval.precision = bfloat16 is for eval.engine=inference (the CPU), but evaluation "
     "runs in dygraph on cpu; set eval.precision=float32 (speed.amp sets a GPU's precision)"),
    (["train.batch_size=127"], ["--nproc", "2"],
     "error: train.batch_size = 127 (the global batch) must be divisible by the 2 processes"),
])
def test_what_cannot_train_is_refused_before_anything_starts(overrides, extra, message,
                                                             tiny_cifar10, tmp_path):
    result = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "run", *overrides),
                      *extra)
    assert (result.returncode, result.stderr, result.stdout) == (2, message + "\n", "")
    assert not (tmp_path / "run").exists()  # no data loaded, no worker, no directory


def test_a_refused_run_leaves_no_directory_it_made(tiny_cifar10, tmp_path):
    (tmp_path / "kept").mkdir()  # empty before the run: not the run's to remove
    result = run_tool("train", *quickstart_args(tiny_cifar10, tmp_path / "kept" / "a" / "b",
                                                "speed.amp=O1"))
    assert result.returncode == 2
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]

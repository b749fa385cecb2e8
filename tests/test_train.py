import io
import json
import os

import numpy as np
import paddle
import pytest

from conftest import quickstart_args, run_tool
from paddle_resnet.config import load_config
from paddle_resnet import checkpoint as ckpt
from paddle_resnet.engine.runlog import read_metrics
from paddle_resnet.engine.trainer import Interrupted, Trainer
from paddle_resnet.errors import CheckpointError, ConfigError

TIMING_KEYS = {"elapsed", "eval_seconds", "epoch_seconds", "ips", "eta_epoch", "eta_run"}


def tiny_config(archive, output_dir, *extra):
    return load_config(None, [
        "model.name=resnet20", f"data.data_file={archive}", "train.epochs=2",
        "train.batch_size=32", "train.log_every=2", "data.test_samples=64",
        f"output_dir={output_dir}", "seed=3", *extra])


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def parameters(path):
    state = ckpt.load_checkpoint(path)
    return {k: v.numpy() for k, v in state["model"].items()}


@pytest.mark.slow
def test_two_epoch_run_writes_everything(tiny_cifar10, tmp_path, capsys):
    out = tmp_path / "run"
    summary = Trainer(tiny_config(tiny_cifar10, out)).fit()
    for name in ("latest.pdckpt", "best.pdckpt", "metrics.jsonl", "config.yaml", "train.log"):
        assert (out / name).is_file(), name
    records = read_metrics(str(out))
    epochs = [r for r in records if r["kind"] == "epoch"]
    iters = [r for r in records if r["kind"] == "train_iter"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"train_loss", "train_top1", "train_top5", "test_loss", "test_top1", "test_top5",
            "best_top1", "elapsed"} <= set(epochs[-1])
    assert len(iters) == 2 * 3  # 6 iterations per epoch, logged every 2
    assert {"eta_epoch", "eta_run", "ips", "lr", "loss"} <= set(iters[0])
    assert summary["best_top1"] == max(r["test_top1"] for r in epochs)
    assert load_config(str(out / "config.yaml"))["train.batch_size"] == 32
    printed = capsys.readouterr().out
    assert "eta epoch" in printed and "eta run" in printed and "\r" not in printed
    assert "\r" not in (out / "train.log").read_text()
    state = ckpt.load_checkpoint(str(out / "latest.pdckpt"))
    assert state["progress"]["epoch"] == 2 and state["progress"]["global_step"] == 12
    assert state["config"]["model"]["name"] == "resnet20"
    assert {"model", "optimizer", "schedule", "rng"} <= set(state)


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tiny_cifar10, tmp_path):
    straight = tmp_path / "straight"
    Trainer(tiny_config(tiny_cifar10, straight, "optimizer.name=adam")).fit()

    broken = tmp_path / "broken"
    cfg = tiny_config(tiny_cifar10, broken, "optimizer.name=adam")
    trainer = Trainer(cfg)

    def stop_mid_epoch_two(t):
        if t.progress.global_step == 8:
            t.request_stop()

    trainer._step_hook = stop_mid_epoch_two
    with pytest.raises(Interrupted, match="resume with the same command plus --resume"):
        trainer.fit()
    state = ckpt.load_checkpoint(str(broken / "latest.pdckpt"))
    assert (state["progress"]["epoch"], state["progress"]["batch_index"]) == (1, 2)

    Trainer(cfg, resume=str(broken / "latest.pdckpt")).fit()
    a, b = parameters(str(straight / "latest.pdckpt")), parameters(str(broken / "latest.pdckpt"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert untimed(read_metrics(str(straight))) == untimed(read_metrics(str(broken)))


@pytest.mark.slow
def test_resume_from_epoch_checkpoint_with_sgd(tiny_cifar10, tmp_path):
    straight = tmp_path / "straight"
    Trainer(tiny_config(tiny_cifar10, straight, "train.checkpoint_every=1")).fit()
    resumed = tmp_path / "resumed"
    Trainer(tiny_config(tiny_cifar10, resumed),
            resume=str(straight / "epoch_001.pdckpt")).fit()
    a, b = parameters(str(straight / "latest.pdckpt")), parameters(str(resumed / "latest.pdckpt"))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_a_resume_on_other_kernels_says_it_cannot_be_exact(tiny_cifar10, tmp_path):
    """A checkpoint records the kernels' hardware and paths (the run header's words); a
    resume that computes differently (here Paddle's convolution in NCHW instead of the
    default's) says in one line that it cannot equal the uninterrupted run."""
    from paddle_resnet.cpu import vector_extension
    first = tmp_path / "first"
    Trainer(tiny_config(tiny_cifar10, first, "train.checkpoint_every=1")).fit()
    path = str(first / "epoch_001.pdckpt")
    recorded = ckpt.load_checkpoint(path)["arithmetic"]
    assert recorded["hardware"] == f"cpu ({vector_extension()})"
    assert recorded["kernels"].startswith("convolution: oneDNN")
    assert "glibc" not in recorded["kernels"]  # the allocator changes no result

    def resumed_header(name, *extra):
        out = tmp_path / name
        Trainer(tiny_config(tiny_cifar10, out, *extra), resume=path,
                stream=io.StringIO()).fit()
        return (out / "train.log").read_text()

    assert "bit for bit" not in resumed_header("same")
    header = resumed_header("paddle_conv", "speed.conv=paddle")
    notes = [line for line in header.splitlines() if "bit for bit" in line]
    assert len(notes) == 1
    assert f"note: {path} was trained with \"{recorded['kernels']}\", this run is with " \
           "\"convolution: Paddle's" in notes[0] and "layout NCHW" in notes[0]
    assert notes[0].endswith(": it goes on from the checkpoint, but will not equal an "
                             "uninterrupted run bit for bit")


def test_the_arithmetic_note_names_only_what_changed():
    from paddle_resnet.engine.resume import arithmetic_note
    bf16 = {"hardware": "cpu (AVX-512 BF16)", "kernels": "convolution: oneDNN (bf16 inputs)"}
    avx2 = {"hardware": "cpu (AVX2)", "kernels": "convolution: oneDNN"}
    assert arithmetic_note("a.pdckpt", bf16, dict(bf16)) is None
    assert arithmetic_note("a.pdckpt", None, bf16) is None  # written before it was recorded
    assert arithmetic_note("a.pdckpt", bf16, avx2) == (
        "a.pdckpt was trained on cpu (AVX-512 BF16) with \"convolution: oneDNN (bf16 "
        "inputs)\", this run is on cpu (AVX2) with \"convolution: oneDNN\": it goes on from "
        "the checkpoint, but will not equal an uninterrupted run bit for bit")
    assert arithmetic_note("a.pdckpt", bf16, {**bf16, "hardware": "cpu (AVX2)"}).startswith(
        "a.pdckpt was trained on cpu (AVX-512 BF16), this run is on cpu (AVX2): it goes on")


def test_output_dir_with_a_run_is_refused(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(tiny_cifar10, out, "train.epochs=1")).fit()
    before = (out / "latest.pdckpt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run.*--resume.*--overwrite"):
        Trainer(tiny_config(tiny_cifar10, out, "train.epochs=1")).fit()
    assert (out / "latest.pdckpt").read_bytes() == before


def test_resume_with_another_model_is_refused(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    Trainer(tiny_config(tiny_cifar10, out, "train.epochs=1")).fit()
    cfg = tiny_config(tiny_cifar10, out, "model.name=resnet32")
    with pytest.raises(CheckpointError, match="holds a resnet20 run"):
        Trainer(cfg, resume=str(out / "latest.pdckpt")).fit()


def test_checkpoints_are_atomic_and_damage_is_reported(tmp_path):
    path = str(tmp_path / "latest.pdckpt")
    model = paddle.nn.Linear(2, 2)
    ckpt.save_checkpoint(path, {"model": model.state_dict()})
    assert os.listdir(tmp_path) == ["latest.pdckpt"]  # no temp file left behind
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable paddle_resnet checkpoint"):
        ckpt.load_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        ckpt.load_checkpoint(str(tmp_path / "missing.pdckpt"))
    newer = io.BytesIO()
    paddle.save({"model": model.state_dict(), "format_version": ckpt.FORMAT_VERSION + 1}, newer)
    with open(path, "wb") as f:
        f.write(newer.getvalue())
    with pytest.raises(CheckpointError, match="newer than this version"):
        ckpt.load_checkpoint(path)


@pytest.mark.slow
def test_train_and_eval_tools_end_to_end(tiny_cifar10, tmp_path):
    out = tmp_path / "run"
    trained = run_tool("train", *quickstart_args(
        tiny_cifar10, out, "data.train_samples=64", "data.test_samples=32", "train.epochs=1",
        "train.batch_size=32"))
    assert trained.returncode == 0, trained.stderr
    assert "epoch 1/1 done" in trained.stdout and "eta run" in trained.stdout

    evaluated = run_tool("eval", "-w", str(out / "best.pdckpt"), "-o",
                         f"data.data_file={tiny_cifar10}")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "top1" in evaluated.stdout and "confusion matrix" in evaluated.stdout
    assert "trained 1 epoch(s), best top-1" in evaluated.stdout
    report = json.loads((out / "eval_best_test.json").read_text())
    assert report["samples"] == 32 and len(report["confusion"]) == 10
    assert (out / "confusion_best_test.png").stat().st_size > 1000

    again = run_tool("train", "-c", "configs/quickstart.yaml", "-o",
                     f"data.data_file={tiny_cifar10}", "-o", f"output_dir={out}")
    assert again.returncode == 2
    assert again.stderr.strip().count("\n") == 0 and "already holds a run" in again.stderr

    mismatch = run_tool("eval", "-w", str(out / "best.pdckpt"), "-o", "model.name=resnet32",
                        "-o", f"data.data_file={tiny_cifar10}")
    assert mismatch.returncode == 1
    assert ("holds a model with model.name=resnet20, but the config asks for "
            "model.name=resnet32") in mismatch.stderr


@pytest.mark.parametrize("args, code, message", [
    (["-c", "configs/nope.yaml"], 2, "does not exist"),
    (["-c", "configs/quickstart.yaml", "-o", "train.epochs=0"], 2, "train.epochs = 0"),
    (["-c", "configs/quickstart.yaml", "-o", "optimizer.lrr=0.1"], 2, "did you mean optimizer.lr"),
    (["-c", "configs/quickstart.yaml", "-o", "data.data_file=/nonexistent/c.tar.gz"], 1,
     "does not exist; pass the path"),
    ([], 2, "required: -c/--config"),
])
def test_train_tool_errors_are_one_line(args, code, message, tmp_path):
    result = run_tool("train", *args, "-o", f"output_dir={tmp_path / 'x'}") if args else \
        run_tool("train")
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_eval_requires_a_checkpoint():
    result = run_tool("eval")
    assert result.returncode == 2 and "-w/--weights" in result.stderr


def test_records_give_the_rate_each_step_used_across_a_decay(tiny_cifar10, tmp_path):
    # multistep at 50% of 2 epochs decays after epoch 1's last step: epoch 1 trained at 0.1
    # throughout, though the optimizer already says 0.01 when its record is written.
    out = tmp_path / "run"
    Trainer(tiny_config(tiny_cifar10, out, "model.name=simple_cnn", "optimizer.name=sgd",
                        "optimizer.lr=0.1", "schedule.name=multistep",
                        "schedule.milestones=[0.5]", "schedule.gamma=0.1")).fit()
    records = read_metrics(str(out))
    assert [round(r["lr"], 6) for r in records if r["kind"] == "epoch"] == [0.1, 0.01]
    assert [round(r["lr"], 6) for r in records
            if r["kind"] == "train_iter"] == [0.1] * 3 + [0.01] * 3

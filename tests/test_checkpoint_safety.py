"""A checkpoint is data: reading one never runs code, and it knows which model it holds."""
import os
import pickle

import pytest

from conftest import ROOT, RunsCommand, run_tool
from paddle_resnet import checkpoint as ckpt
from paddle_resnet.errors import CheckpointError

SHIPPED = os.path.join(ROOT, "pretrained", "resnet20_cifar10.pdckpt")


def evil_checkpoint(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"model": RunsCommand(f"touch {marker}"), "format_version": 1}, f,
                    protocol=4)
    return str(path)


def test_a_crafted_checkpoint_is_refused_before_it_runs_anything(tmp_path):
    marker = tmp_path / "ran"
    path = evil_checkpoint(tmp_path / "evil.pdckpt", marker)
    with pytest.raises(CheckpointError, match=r"names posix\.system, which no checkpoint "
                                              r"holds.*nothing from it was run"):
        ckpt.load_checkpoint(path)
    assert not marker.exists()


def test_predict_on_a_crafted_checkpoint_exits_with_one_line_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = evil_checkpoint(tmp_path / "evil.pdckpt", marker)
    done = run_tool("predict", "-w", path, os.path.join(ROOT, "pretrained", "samples"))
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: {path} is not a paddle_resnet checkpoint: it names posix.system, which no "
        "checkpoint holds, and loading it could run code; nothing from it was run. Use a "
        "checkpoint written by tools/train.py or tools/release.py"]
    assert not marker.exists()


def test_a_training_checkpoint_with_optimizer_and_rng_state_still_loads(tmp_path):
    import paddle
    from paddle_resnet.models import build_model
    model = build_model("resnet20")
    optimizer = paddle.optimizer.Momentum(0.1, parameters=model.parameters())
    model(paddle.rand([2, 3, 32, 32])).mean().backward()
    optimizer.step()
    path = str(tmp_path / "latest.pdckpt")
    ckpt.save_checkpoint(path, {"model": model.state_dict(), "rng": paddle.get_rng_state(),
                                "optimizer": ckpt.optimizer_state_for_saving(optimizer, model),
                                "progress": {"epoch": 1}, "config": {}})
    state = ckpt.load_checkpoint(path)
    assert (state["model"]["conv1.weight"].numpy() == model.conv1.weight.numpy()).all()
    paddle.set_rng_state(state["rng"])
    assert state["optimizer"]


def test_eval_refuses_weights_of_another_model_and_writes_nothing(tiny_cifar10, tmp_path):
    # resnet20 and plain20 have the same shapes: the weights would load and score ~10%.
    done = run_tool("eval", "-w", SHIPPED, "-o", "model.name=plain20",
                    "-o", f"data.data_file={tiny_cifar10}", "--out", str(tmp_path / "out"))
    assert done.returncode != 0
    assert done.stderr.strip() == (
        f"error: {SHIPPED} holds a model with model.name=resnet20, but the config asks for "
        "model.name=plain20; drop that override (a checkpoint knows its model) or pass a "
        "checkpoint trained with model.name=plain20")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tool", ["eval", "predict", "export", "train --resume", "release"])
def test_every_tool_that_reads_a_checkpoint_refuses_a_crafted_one(tool, tiny_cifar10, tmp_path):
    marker = tmp_path / "ran"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = evil_checkpoint(run_dir / "latest.pdckpt", marker)
    (run_dir / "metrics.jsonl").write_text("")
    data = f"data.data_file={tiny_cifar10}"
    args = {"eval": ["eval", "-w", path, "-o", data, "--out", str(tmp_path / "out")],
            "predict": ["predict", "-w", path, os.path.join(ROOT, "pretrained", "samples")],
            "export": ["export", "-w", path, "--out", str(tmp_path / "out")],
            "train --resume": ["train", "-c", "configs/quickstart.yaml", "-o", data, "-o",
                               f"output_dir={run_dir}", "--resume", path, "--nproc", "1"],
            "release": ["release", str(run_dir), "--out", str(tmp_path / "out" / "x.pdckpt")],
            }[tool]
    done = run_tool(*args)
    assert done.returncode != 0
    assert "names posix.system, which no checkpoint holds" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not marker.exists()


def test_create_model_refuses_a_crafted_checkpoint(tmp_path):
    import paddle_resnet as pr
    marker = tmp_path / "ran"
    with pytest.raises(CheckpointError, match="names posix.system"):
        pr.create_model("resnet20", pretrained=evil_checkpoint(tmp_path / "e.pdckpt", marker))
    assert not marker.exists()


def test_eval_of_a_shipped_checkpoint_writes_nothing_into_pretrained(tiny_cifar10, tmp_path):
    before = sorted(os.listdir(os.path.join(ROOT, "pretrained")))
    done = run_tool("eval", "-w", SHIPPED, "-o", f"data.data_file={tiny_cifar10}")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(os.path.join(ROOT, "pretrained"))) == before
    assert "output/eval/eval_resnet20_cifar10_test.json" in done.stdout

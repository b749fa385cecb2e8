"""The shipped checkpoint is what pretrained/README.md says it is: the same file (sha256),
the same predictions on the shipped samples, the same test accuracy on the real test set."""
import hashlib
import json
import os
import re

import pytest

from conftest import ROOT, run_tool

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

PRETRAINED = os.path.join(ROOT, "pretrained")
CHECKPOINT = os.path.join(PRETRAINED, "resnet20_cifar10.pdckpt")


def readme() -> str:
    with open(os.path.join(PRETRAINED, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_the_readme_gives_the_checkpoints_sha256_and_what_it_holds():
    with open(CHECKPOINT, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert re.search(r"\| this file \| sha256 `([0-9a-f]{64})`", readme()).group(1) == digest

    from paddle_resnet.checkpoint import load_checkpoint, load_trained_model
    from paddle_resnet.models import count_parameters
    state = load_checkpoint(CHECKPOINT)
    # Weights only: no optimizer or schedule state to resume from.
    assert set(state) - {"format_version"} == {"config", "model", "progress"}
    assert state["config"]["model"]["name"] == "resnet20"
    assert state["progress"]["epoch"] == state["config"]["train"]["epochs"]
    model, *_ = load_trained_model(CHECKPOINT)
    assert count_parameters(model) == 269_722  # He et al.: 0.27M


def test_predict_gets_the_samples_the_readme_says(tmp_path):
    done = run_tool("predict", "-w", CHECKPOINT, os.path.join(PRETRAINED, "samples"),
                    "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 10
    # Each sample is named after its true class.
    right = sum(os.path.splitext(os.path.basename(r["file"]))[0] == r["top"][0]["class"]
                for r in results)
    said = re.search(r"the model gets (\d+)\s+of\s+the\s+10\s+right", readme()).group(1)
    assert right == int(said)


def test_eval_on_the_real_test_set_prints_the_readmes_numbers(real_cifar10, tmp_path):
    done = run_tool("eval", "-w", CHECKPOINT, "-o", f"data.data_file={real_cifar10}",
                    "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    top1, top5, loss = re.search(r"\| test top-1 / top-5 / loss, all 10,000 test images \| "
                                 r"\*\*([\d.]+)%\*\* / ([\d.]+)% / ([\d.]+) \|", readme()).groups()
    assert f"loss {loss}  top1 {top1}%  top5 {top5}%" in done.stdout, done.stdout
    with open(tmp_path / "eval_resnet20_cifar10_test.json", encoding="utf-8") as f:
        assert json.load(f)["samples"] == 10_000

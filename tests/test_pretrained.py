"""Each shipped checkpoint is what pretrained/README.md and its model card say it is: the
same file (sha256), the same predictions on the shipped samples, the same test accuracy
on the real test set."""
import hashlib
import json
import os
import re

import pytest

from conftest import ROOT, run_tool

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

PRETRAINED = os.path.join(ROOT, "pretrained")
# file -> its model card (release.py writes it as <stem>.md), the model it holds and that
# model's published parameter count (He et al. 2016: ResNet-20 0.27M).
SHIPPED = {"resnet20_paper.pdckpt": ("resnet20_paper.md", "resnet20", 269_722),
           "resnet20_cifar10.pdckpt": ("resnet20_cifar10.md", "resnet20", 269_722)}
CARDS = {name: card for name, (card, _, _) in SHIPPED.items()}
# A row of the README's table: | `file` | recipe | epochs | **top1%** / top5% / loss | N of 10 |
ROW = re.compile(r"^\| `(?P<file>[\w.]+\.pdckpt)` \|[^|]*\| (?P<epochs>\d+) \| "
                 r"\*\*(?P<top1>[\d.]+)%\*\* / (?P<top5>[\d.]+)% / (?P<loss>[\d.]+) \| "
                 r"(?P<right>\d+) of 10 \|", re.MULTILINE)


def text(name: str) -> str:
    with open(os.path.join(PRETRAINED, name), encoding="utf-8") as f:
        return f.read()


def rows():
    return {m["file"]: m.groupdict() for m in ROW.finditer(text("README.md"))}


def test_the_readme_lists_every_shipped_checkpoint():
    shipped = sorted(f for f in os.listdir(PRETRAINED) if f.endswith(".pdckpt"))
    assert sorted(rows()) == shipped == sorted(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_the_card_gives_the_checkpoints_sha256_and_what_it_holds(name):
    path = os.path.join(PRETRAINED, name)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    said = re.search(r"\| this file \|[^|\n]*sha256 `([0-9a-f]{64})`", text(CARDS[name]))
    assert said.group(1) == digest

    from paddle_resnet.checkpoint import load_checkpoint, load_trained_model
    from paddle_resnet.models import count_parameters
    state = load_checkpoint(path)
    # Weights only: no optimizer or schedule state to resume from.
    assert set(state) - {"format_version"} == {"config", "model", "progress"}
    _, model_name, parameters = SHIPPED[name]
    assert state["config"]["model"]["name"] == model_name
    assert state["progress"]["epoch"] == state["config"]["train"]["epochs"]
    assert state["progress"]["epoch"] == int(rows()[name]["epochs"])
    model, *_ = load_trained_model(path)
    assert count_parameters(model) == parameters


@pytest.mark.parametrize("name", sorted(CARDS))
def test_predict_gets_the_samples_the_readme_says(name):
    done = run_tool("predict", "-w", os.path.join(PRETRAINED, name),
                    os.path.join(PRETRAINED, "samples"), "--json")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 10
    # Each sample is named after its true class.
    right = sum(os.path.splitext(os.path.basename(r["file"]))[0] == r["top"][0]["class"]
                for r in results)
    assert right == int(rows()[name]["right"])


@pytest.mark.parametrize("name", sorted(CARDS))
def test_eval_on_the_real_test_set_prints_the_readmes_and_the_cards_numbers(
        name, real_cifar10, tmp_path):
    done = run_tool("eval", "-w", os.path.join(PRETRAINED, name),
                    "-o", f"data.data_file={real_cifar10}", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    row = rows()[name]
    assert f"loss {row['loss']}  top1 {row['top1']}%  top5 {row['top5']}%" in done.stdout, \
        done.stdout
    card = re.search(r"\| test top-1 / top-5 / loss, (?:all )?10,000 test images \| "
                     r"\*\*([\d.]+)%\*\* / ([\d.]+)% / ([\d.]+)", text(CARDS[name]))
    assert card.groups() == (row["top1"], row["top5"], row["loss"])
    stem = os.path.splitext(name)[0]
    with open(tmp_path / f"eval_{stem}_test.json", encoding="utf-8") as f:
        assert json.load(f)["samples"] == 10_000

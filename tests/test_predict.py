import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_tool
from paddle_resnet.config import load_config
from paddle_resnet.engine.trainer import Trainer


@pytest.fixture(scope="module")
def trained(tiny_cifar10, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "run"
    Trainer(load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={out}",
                               "train.epochs=1", "train.batch_size=50",
                               "data.test_samples=20"])).fit()
    return out / "latest.pdckpt"


@pytest.mark.slow
def test_predict_folder_with_a_bad_file(trained, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "c.jpg").write_text("not an image")
    result = run_tool("predict", "-w", str(trained), str(folder), "-k", "2")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0].rsplit("/", 1)[1] for line in lines] == ["a.png", "b.jpg"]
    assert all(line.count("%") == 2 for line in lines)
    assert "c.jpg: error: not a readable image" in result.stderr
    as_json = run_tool("predict", "-w", str(trained), str(folder), "--json")
    records = json.loads(as_json.stdout)
    assert [("error" in r) for r in records] == [False, False, True]
    top = records[0]["top"]
    assert len(top) == 3 and abs(sum(t["probability"] for t in top) - 1) < 1 and \
        top[0]["probability"] >= top[1]["probability"]


def test_predict_with_no_images(trained, tmp_path):
    result = run_tool("predict", "-w", str(trained), str(tmp_path))
    assert result.returncode == 1 and "no image files found" in result.stderr


def test_predict_takes_the_checkpoints_views_and_an_override(trained, tmp_path):
    """`-o eval.tta=flip` predicts on each image and its mirror, as tools/eval.py
    evaluates, and says so on stderr; the probabilities are the library's on the same
    checkpoint."""
    import paddle_resnet as pr
    from paddle_resnet.checkpoint import load_trained_model
    image = tmp_path / "a.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    found = {}
    for tta in ("none", "flip"):
        result = run_tool("predict", "-w", str(trained), str(image), "--json", "-k", "10",
                          "-o", f"eval.tta={tta}")
        assert result.returncode == 0, result.stderr
        assert f"eval.tta={tta}: " + {
            "none": "one view per image",
            "flip": "each image and its mirror, logits averaged"}[tta] in result.stderr.splitlines()
        top = json.loads(result.stdout)[0]["top"]
        found[tta] = np.array([t["probability"] for t in sorted(top, key=lambda t: t["index"])])
    model = load_trained_model(str(trained), None, ())[0]
    for tta, probabilities in found.items():
        expected = pr.predict(model, [str(image)], tta=tta).probabilities[0]
        np.testing.assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)
    assert not np.allclose(found["none"], found["flip"])
    bad = run_tool("predict", "-w", str(trained), str(image), "-o", "eval.tta=mirror")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "error: eval.tta = 'mirror' is not allowed; expected one of none, flip, flip_shift")


def test_an_exported_model_takes_no_override(tmp_path):
    result = run_tool("predict", "-m", str(tmp_path), str(tmp_path), "-o", "eval.tta=flip")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "error: -o eval.tta=flip: -o overrides a checkpoint's config (-w); an exported model "
        "(-m) has none")

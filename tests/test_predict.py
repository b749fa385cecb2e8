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

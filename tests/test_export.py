"""Export for Paddle Inference: the same predictions as the checkpoint in dygraph."""
import json

import numpy as np
import paddle
import pytest

from conftest import run_tool
from paddle_resnet.config import load_config
from paddle_resnet.data import MEAN_STD, load_split
from paddle_resnet.data.augment import normalize
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.errors import UserError
from paddle_resnet.checkpoint import load_trained_model
from paddle_resnet.export import export_model
from paddle_resnet.inference import InferenceModel


@pytest.fixture(scope="module")
def checkpoint(tiny_cifar10, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    Trainer(load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={out}",
                               "train.epochs=1", "train.batch_size=50", "data.test_samples=20",
                               "log.visualdl=false"])).fit()
    return str(out / "latest.pdckpt")


def dygraph_logits(checkpoint, batch):
    model, *_ = load_trained_model(checkpoint)
    with paddle.no_grad():
        return model(paddle.to_tensor(batch)).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("softmax", [False, True])
def test_exported_model_predicts_like_dygraph(checkpoint, tiny_cifar10, tmp_path, softmax):
    out = tmp_path / "exported"
    meta = export_model(checkpoint, str(out), softmax=softmax)
    assert meta["classes"][3] == "cat" and meta["output"] == ("softmax" if softmax else "logits")
    images = load_split("cifar10", "test", tiny_cifar10).images
    batch = normalize(images, *MEAN_STD["cifar10"])
    expected = dygraph_logits(checkpoint, batch)
    got = InferenceModel(str(out))(batch)
    if softmax:
        expected = np.exp(expected - expected.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()


@pytest.mark.slow
def test_export_and_predict_tools(checkpoint, tmp_path):
    from PIL import Image
    out = tmp_path / "exported"
    exported = run_tool("export", "-w", checkpoint, "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert {"model.json", "model.pdiparams", "export.json"} <= {p.name for p in out.iterdir()}
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
                    ).save(image)
    by_model = run_tool("predict", "-m", str(out), str(image), "--json")
    by_checkpoint = run_tool("predict", "-w", checkpoint, str(image), "--json")
    assert by_model.returncode == 0 and by_checkpoint.returncode == 0, by_model.stderr
    a, b = json.loads(by_model.stdout)[0]["top"], json.loads(by_checkpoint.stdout)[0]["top"]
    assert [t["class"] for t in a] == [t["class"] for t in b]
    assert abs(a[0]["probability"] - b[0]["probability"]) < 1e-4


def test_not_an_exported_model(tmp_path):
    with pytest.raises(UserError, match="is not an exported model"):
        InferenceModel(str(tmp_path))

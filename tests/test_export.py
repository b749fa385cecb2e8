"""Export for Paddle Inference: the same predictions as the checkpoint in dygraph."""
import json
import os

import numpy as np
import paddle
import pytest

from conftest import ROOT, run_tool
from paddle_resnet.config import load_config
from paddle_resnet.data import MEAN_STD, load_split
from paddle_resnet.data.augment import normalize
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.errors import UserError
from paddle_resnet.checkpoint import load_trained_model
from paddle_resnet.export import export_model
from paddle_resnet.inference import InferenceModel
from paddle_resnet.prediction import exported_classifier

SHIPPED = os.path.join(ROOT, "pretrained", "resnet20_cifar10.pdckpt")


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
    exported = run_tool("export", "-w", checkpoint, "--out", str(out))
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
    # tools/predict.py's batch: eval.batch_size's choice measured at export (ResNet-20: 256),
    # and 256 for an export written before export.json held it
    meta_path = out / "export.json"
    meta = json.loads(meta_path.read_text())
    assert meta["cpu_batch"] == 256
    meta["cpu_batch"] = 7
    meta_path.write_text(json.dumps(meta))
    assert exported_classifier(str(out))[1] == 7
    del meta["cpu_batch"]
    meta_path.write_text(json.dumps(meta))
    assert exported_classifier(str(out))[1] == 256


@pytest.mark.slow
def test_a_densenet_export_records_its_smaller_cpu_batch(tmp_path):
    from paddle_resnet.checkpoint import save_checkpoint
    from paddle_resnet.models import build_model
    cfg = load_config(None, ["model.name=densenet40_k12"])
    weights = str(tmp_path / "densenet.pdckpt")
    save_checkpoint(weights, {"model": build_model("densenet40_k12").state_dict(),
                              "config": cfg.to_dict(), "progress": {"epoch": 0}})
    meta = export_model(weights, str(tmp_path / "exported"))
    assert meta["cpu_batch"] == 16


def test_not_an_exported_model(tmp_path):
    with pytest.raises(UserError, match="is not an exported model"):
        InferenceModel(str(tmp_path))


@pytest.mark.slow
@pytest.mark.real_data
def test_onnx_export_predicts_like_paddle_on_real_test_images(real_cifar10, tmp_path):
    import onnxruntime
    out = tmp_path / "onnx"
    done = run_tool("export", "-w", SHIPPED, "--out", str(out), "--format", "onnx")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("model.json, model.pdiparams, export.json, model.onnx")
    assert json.loads((out / "export.json").read_text())["onnx"] == "model.onnx"
    test = load_split("cifar10", "test", real_cifar10)
    batch = normalize(test.images, *MEAN_STD["cifar10"])
    session = onnxruntime.InferenceSession(str(out / "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    got = np.concatenate([session.run(None, {name: batch[i:i + 500]})[0]
                          for i in range(0, len(batch), 500)])
    # float32 kernels summing in another order: measured ~1e-6 on logits of ~10
    np.testing.assert_allclose(got[:1000], dygraph_logits(SHIPPED, batch[:1000]),
                               rtol=1e-4, atol=1e-4)
    # On all 10,000 official test images, the same top-1 as Paddle Inference, image by image.
    inference = InferenceModel(str(out))
    served = np.concatenate([inference(batch[i:i + 500]) for i in range(0, len(batch), 500)])
    assert (got.argmax(1) == served.argmax(1)).all()
    assert len(got) == 10_000 and (got.argmax(1) == test.labels).mean() > 0.85


def test_onnx_without_paddle2onnx_is_one_line_before_anything_is_written(monkeypatch,
                                                                          tmp_path):
    import builtins
    real_import = builtins.__import__

    def no_paddle2onnx(name, *args, **kwargs):
        if name == "paddle2onnx":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_paddle2onnx)
    with pytest.raises(UserError, match=r"--format onnx needs paddle2onnx: pip install"):
        export_model("unused.pdckpt", str(tmp_path / "out"), fmt="onnx")
    assert not (tmp_path / "out").exists()


def test_export_takes_overrides_not_an_output_folder_after_o(tmp_path):
    done = run_tool("export", "-w", SHIPPED, "--out", str(tmp_path / "o"),
                    "-o", "device=cpu", "-o", "exported/resnet20")
    assert done.returncode == 2
    assert "exported/resnet20" in done.stderr and not (tmp_path / "o").exists()

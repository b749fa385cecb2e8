"""The library as a notebook uses it: `import paddle_resnet`, the shipped weights in one
call, predictions and metrics returned (not printed), paddle.hub, no process changes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_tool

import paddle_resnet as pr
from paddle_resnet import checkpoint as ckpt
from paddle_resnet.errors import CheckpointError, UserError

SAMPLES = os.path.join(ROOT, "pretrained", "samples")
SHIPPED = os.path.join(ROOT, "pretrained", "resnet20_cifar10.pdckpt")


def sample_files():
    return sorted(os.path.join(SAMPLES, name) for name in os.listdir(SAMPLES))


def test_importing_the_package_changes_nothing_in_the_process_and_loads_no_paddle():
    probe = ("import os, sys, warnings\n"
             "env, filters = dict(os.environ), list(warnings.filters)\n"
             "import paddle_resnet\n"
             "print(dict(os.environ) == env, warnings.filters == filters,\n"
             "      'paddle' in sys.modules, len(paddle_resnet.__all__) > 5)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=ROOT, env={k: v for k, v in os.environ.items()
                                         if k not in ("MKL_DEBUG_CPU_TYPE", "GLOG_minloglevel")})
    assert done.stdout.split() == ["True", "True", "False", "True"], done.stderr


def test_pretrained_true_is_the_shipped_checkpoint_and_predicts_as_the_tool_does():
    model = pr.create_model("resnet20", pretrained=True)
    assert not model.training
    shipped = ckpt.load_checkpoint(SHIPPED)["model"]
    assert all((model.state_dict()[k].numpy() == v.numpy()).all() for k, v in shipped.items())
    result = pr.predict(model, sample_files())
    assert result.probabilities.shape == (10, 10) and result.indices.dtype == np.int64
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    tool = json.loads(run_tool("predict", "-w", SHIPPED, SAMPLES, "--json").stdout)
    assert result.classes == [r["top"][0]["class"] for r in tool]
    np.testing.assert_allclose(result.probabilities.max(axis=1),
                               [r["top"][0]["probability"] for r in tool], rtol=1e-4)
    # the same images as a uint8 array give the same answer
    from paddle_resnet.prediction import read_image
    array = np.stack([read_image(f) for f in sample_files()])
    assert pr.predict(model, array).classes == result.classes


def test_pretrained_asks_are_checked(tmp_path):
    with pytest.raises(CheckpointError, match=r"no shipped weights for 'resnet56'; models "
                                              r"with weights: resnet20"):
        pr.create_model("resnet56", pretrained=True)
    with pytest.raises(CheckpointError, match=r"holds a model with model.name=resnet20, but "
                                              r"the config asks for model.name=plain20"):
        pr.create_model("plain20", pretrained=SHIPPED)
    with pytest.raises(UserError, match="takes no builder arguments"):
        pr.create_model("resnet20", pretrained=True, num_classes=100)
    with pytest.raises(UserError, match=r"pass uint8 RGB images as N x 32 x 32 x 3"):
        pr.predict(pr.create_model("resnet20"), np.zeros((2, 3, 32, 32), np.uint8))
    assert pr.create_model("resnet20", num_classes=100).fc.weight.shape == [64, 100]
    assert "resnet20" in pr.list_models() and pr.list_pretrained() == ["resnet20"]


def test_predict_on_two_views_averages_each_images_logits_with_its_mirrors():
    import paddle
    from paddle_resnet.data import MEAN_STD
    from paddle_resnet.data.augment import normalize
    from paddle_resnet.prediction import read_image, softmax
    model = pr.create_model("resnet20", pretrained=True)
    images = np.stack([read_image(f) for f in sample_files()])
    batch = normalize(images, *MEAN_STD["cifar10"])  # NCHW: the width is the last axis
    with paddle.no_grad():
        logits = [model(paddle.to_tensor(np.ascontiguousarray(b))).numpy()
                  for b in (batch, batch[..., ::-1])]
    expected = softmax((logits[0] + logits[1]) / 2)
    result = pr.predict(model, images, tta="flip")
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-7)
    # a mirrored image has the same two views
    assert pr.predict(model, images[:, :, ::-1], tta="flip").classes == result.classes
    assert not np.allclose(result.probabilities, pr.predict(model, images).probabilities)
    # checked before any image is read
    with pytest.raises(UserError, match="eval.tta = 'mirror'; expected one of none, flip, "
                       "flip_shift"):
        pr.predict(model, ["no/such/file.png"], tta="mirror")


def test_paddle_hub_loads_the_zoo_from_a_local_clone():
    import paddle
    assert "resnet56" in paddle.hub.list(ROOT, source="local")
    model = paddle.hub.load(ROOT, "resnet20", source="local", pretrained=True)
    shipped = ckpt.load_checkpoint(SHIPPED)["model"]
    assert (model.state_dict()["fc.weight"].numpy() == shipped["fc.weight"].numpy()).all()


@pytest.mark.slow
def test_train_then_evaluate_from_python(tiny_cifar10, tmp_path):
    cfg = pr.load_config(os.path.join(ROOT, "configs", "quickstart.yaml"), [
        f"data.data_file={tiny_cifar10}", "data.train_samples=null", "data.test_samples=null",
        "train.epochs=1", "train.batch_size=50", f"output_dir={tmp_path / 'run'}"])
    summary = pr.train(cfg)
    model = pr.create_model("resnet20", pretrained=str(tmp_path / "run" / "latest.pdckpt"))
    metrics = pr.evaluate(model, data_file=tiny_cifar10)
    assert metrics["samples"] == 100
    assert metrics["top1"] == pytest.approx(summary["best_top1"])
    flipped = pr.evaluate(model, data_file=tiny_cifar10, tta="flip")
    assert flipped["samples"] == 100 and flipped["loss"] != pytest.approx(metrics["loss"])
    with pytest.raises(UserError, match="eval.tta = 'mirror'; expected one of none, flip, "
                       "flip_shift"):
        pr.evaluate(model, data_file=tiny_cifar10, tta="mirror")


def test_the_readmes_python_example_runs(tiny_cifar10):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        import re
        example = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    # Its last line trains ResNet-56 (test_train_then_evaluate_from_python trains through
    # the same call); everything else runs as written, on a tiny archive for evaluate.
    lines = example.strip().splitlines()
    assert lines[-1].startswith("summary = pr.train(pr.load_config(")
    script = "\n".join(lines[:-1]).replace("cifar-10-python.tar.gz", tiny_cifar10)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == "['cat', 'horse']"

"""The speed switches: each runs (or refuses clearly) on the CPU, with the same numbers."""
import numpy as np
import paddle
import pytest

from conftest import run_tool
from paddle_resnet.config import load_config
from paddle_resnet.device import MixedPrecision, to_device
from paddle_resnet.engine.runlog import read_metrics
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.errors import ConfigError


def train(tiny_cifar10, out, *overrides):
    cfg = load_config(None, [f"data.data_file={tiny_cifar10}", f"output_dir={out}",
                             "train.epochs=2", "train.batch_size=50", "train.log_every=1",
                             "log.visualdl=false", *overrides])
    with open("/dev/null", "w") as quiet:
        summary = Trainer(cfg, stream=quiet).fit()
    losses = [r["loss"] for r in read_metrics(str(out)) if r["kind"] == "train_iter"]
    return summary, np.array(losses)


@pytest.mark.slow
def test_to_static_trains_like_dygraph(tiny_cifar10, tmp_path):
    # A traced model runs Paddle's kernels, so the dygraph run it equals takes them too.
    eager, eager_losses = train(tiny_cifar10, tmp_path / "eager", "speed.conv=paddle")
    static, static_losses = train(tiny_cifar10, tmp_path / "static", "speed.to_static=true")
    assert len(eager_losses) == len(static_losses) >= 8
    np.testing.assert_allclose(static_losses, eager_losses, rtol=1e-4)
    assert static["test_top1"] == pytest.approx(eager["test_top1"], abs=1.0)


@pytest.mark.slow
def test_augmentation_on_the_device_trains_as_on_the_host(tiny_cifar10, tmp_path):
    host, host_losses = train(tiny_cifar10, tmp_path / "host")
    device, device_losses = train(tiny_cifar10, tmp_path / "device", "data.augment_on=device")
    assert len(host_losses) == len(device_losses) >= 8
    # The standard recipe's images are bit-identical either way, so are the steps.
    np.testing.assert_array_equal(device_losses, host_losses)
    assert device["test_top1"] == host["test_top1"]


@pytest.mark.slow
def test_channels_last_trains_like_nchw_and_evaluates_under_paddle_inference(tiny_cifar10,
                                                                             tmp_path):
    nchw, nchw_losses = train(tiny_cifar10, tmp_path / "nchw", "model.name=resnet20")
    nhwc, nhwc_losses = train(tiny_cifar10, tmp_path / "nhwc", "model.name=resnet20",
                              "speed.channels_last=true")
    assert len(nchw_losses) == len(nhwc_losses) >= 8
    # The same function (test_models.py checks it in float64); float32 sums in another
    # order then drift apart a little more with every step of a high learning rate.
    np.testing.assert_allclose(nhwc_losses[:2], nchw_losses[:2], rtol=1e-4)
    np.testing.assert_allclose(nhwc_losses, nchw_losses, rtol=0.02)
    result = run_tool("eval", "-w", str(tmp_path / "nhwc" / "latest.pdckpt"),
                      "-o", f"data.data_file={tiny_cifar10}")
    assert result.returncode == 0, result.stderr
    assert f"{nhwc['test_top1']:.2f}" in result.stdout


@pytest.mark.slow
def test_amp_is_refused_on_the_cpu_with_the_fix(tiny_cifar10, tmp_path):
    with pytest.raises(ConfigError, match="speed.amp = O1 needs a GPU .* set speed.amp=off"):
        MixedPrecision("O1", "float16", 2.0**15, "cpu")
    result = run_tool("train", "-c", "configs/quickstart.yaml", "-o",
                      f"data.data_file={tiny_cifar10}", "-o", f"output_dir={tmp_path}/run",
                      "-o", "speed.amp=O2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: speed.amp = O2 needs a GPU (Paddle's auto_cast only acts on CUDA places) but "
        "the device is cpu; set speed.amp=off"]
    assert not (tmp_path / "run" / "latest.pdckpt").exists()


def test_amp_off_is_a_plain_step():
    paddle.seed(0)
    layer = paddle.nn.Linear(4, 2)
    optimizer = paddle.optimizer.SGD(0.5, parameters=layer.parameters())
    before = layer.weight.numpy().copy()
    amp = MixedPrecision("off", "float16", 2.0**15, "cpu")
    assert amp.scaler is None and amp.state_dict() == {}
    with amp.autocast():
        loss = layer(paddle.ones([3, 4])).sum()
    amp.backward_and_step(loss, optimizer)
    # d(sum of outputs)/dW = 3 for every weight: one SGD step of 0.5 moves each by -1.5
    np.testing.assert_allclose(layer.weight.numpy(), before - 1.5, rtol=1e-6)


def test_pin_memory_is_ignored_on_the_cpu():
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensor = to_device(batch, "cpu", pin_memory=True)
    assert tensor.place.is_cpu_place()
    np.testing.assert_array_equal(tensor.numpy(), batch)

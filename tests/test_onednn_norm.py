"""Batch normalization (+ ReLU) and the residual add + ReLU on oneDNN
(paddle_resnet/speed/onednn_norm.py): the values, gradients and running statistics of
Paddle's BatchNorm, ReLU and add; Paddle's own kernels in evaluation."""
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from conftest import assert_same_training
from paddle_resnet.cpu import usable_cores
from paddle_resnet.engine.step import speed_options, training_model
from paddle_resnet.models import build_model
from paddle_resnet.speed import plan_speed
from paddle_resnet.speed.onednn_norm import (OneDNNBasicBlock, OneDNNBatchNorm2D,
                                             bn_add_relu, bn_relu, use_onednn_norm)


@pytest.fixture(scope="module")
def plan():
    # float32 convolutions: bf16's rounding would turn BN's float32 rounding into larger
    # differences than the comparisons below allow (bf16 is tested in test_onednn_conv.py);
    # the layers one by one, as the fused operators (the default) would take the blocks
    found = plan_speed(speed_options(["onednn_norm=true", "conv_bf16=false",
                                      "fused_block=false"]), "cpu", 2)
    if not found.onednn_norm:
        pytest.fail(f"the oneDNN operators should build on this machine: {found.note}")
    return found


def norm_pair(channels=16):
    paddle.seed(0)
    plain = paddle.nn.BatchNorm2D(channels, data_format="NHWC")
    plain.weight.set_value(paddle.rand([channels]) + 0.5)
    plain.bias.set_value(paddle.randn([channels]))
    switched = paddle.nn.BatchNorm2D(channels, data_format="NHWC")
    switched.set_state_dict(plain.state_dict())
    assert use_onednn_norm(switched) == 1 and type(switched) is OneDNNBatchNorm2D
    return plain, switched


FORMS = {"bn": lambda layer, x, r: layer(x),
         "bn_relu": lambda layer, x, r: (bn_relu(layer, x) if type(layer) is OneDNNBatchNorm2D
                                         else F.relu(layer(x))),
         "bn_add_relu": lambda layer, x, r: (bn_add_relu(layer, x, r)
                                             if type(layer) is OneDNNBatchNorm2D
                                             else F.relu(layer(x) + r))}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_values_gradients_and_running_statistics_equal_paddles(plan, form):
    plain, switched = norm_pair()
    rng = np.random.default_rng(1)
    for step in range(2):  # the running statistics move twice
        x_np = (3 * rng.standard_normal([6, 5, 7, 16]) + 1).astype("float32")
        r_np = rng.standard_normal([6, 5, 7, 16]).astype("float32")
        found = {}
        for key, layer in (("plain", plain), ("switched", switched)):
            x = paddle.to_tensor(x_np, stop_gradient=False)
            r = paddle.to_tensor(r_np, stop_gradient=False)
            y = FORMS[form](layer, x, r)
            grads = paddle.grad([y], [x, r, layer.weight, layer.bias],
                                [paddle.to_tensor(np.sin(np.arange(y.size)).reshape(y.shape),
                                                  "float32")], allow_unused=True)
            found[key] = [y] + [g for g in grads]
        for name, expected, got in zip(["y", "x", "r", "weight", "bias"], found["plain"],
                                       found["switched"]):
            if expected is None:
                assert got is None, name
                continue
            scale = float(np.abs(expected.numpy()).max())
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=0,
                                       atol=1e-5 * scale, err_msg=f"{form} {name}")
        for buffer in ("_mean", "_variance"):
            np.testing.assert_allclose(getattr(switched, buffer).numpy(),
                                       getattr(plain, buffer).numpy(), rtol=1e-5, atol=1e-6)


def test_evaluation_takes_paddles_kernel_on_the_running_statistics(plan):
    plain, switched = norm_pair()
    plain.eval(), switched.eval()
    x = paddle.randn([4, 3, 3, 16])
    np.testing.assert_array_equal(switched(x).numpy(), plain(x).numpy())


def test_resnet20_trains_the_same_steps_with_and_without_it(plan):
    """Three steps of the package's train_step: the fused model's loss and weights stay
    those of the oneDNN-convolution model with Paddle's BN, to float32 rounding."""
    without = plan_speed(speed_options(["onednn_norm=false", "conv_bf16=false"]), "cpu", 2)
    models = {}
    for key, p in (("fused", plan), ("paddle_bn", without)):
        paddle.seed(0)
        models[key] = training_model("resnet20", p)
    assert type(models["fused"].layer1[0]) is OneDNNBasicBlock
    assert list(models["fused"].state_dict()) == list(build_model("resnet20").state_dict())
    # Three steps amplify float32 rounding: Paddle's own convolution and oneDNN's, both
    # with Paddle's BN, end 2.9e-4 apart on these batches; 1e-3 leaves room for that.
    assert_same_training(models, loss_rtol=1e-5, weight_atol=1e-3)


@pytest.mark.parametrize("processes, fused, expected", [
    (1, "true", False), (1, "false", True), (2, "false", False), (2, "true", False)])
def test_the_default_normalises_on_onednn_only_where_it_measured_faster(
        plan, processes, fused, expected):
    """Several threads in a process and the per-layer path: 1.13x ResNet-20's step. Beside
    the fused operators 0.97x ResNet-50's (bottlenecks), and 0.97x with one thread
    (docs/performance.md); `true` asks for it anywhere."""
    if usable_cores() < 2:
        pytest.skip("needs two cores for a process with several threads")
    chosen = plan_speed(speed_options([f"fused_block={fused}"]), "cpu", processes)
    assert chosen.onednn_norm is expected
    asked = plan_speed(speed_options([f"fused_block={fused}", "onednn_norm=true"]), "cpu",
                       processes)
    assert asked.onednn_norm and "batch norm (+ ReLU, + residual add): oneDNN" in asked.describe()

"""DenseNet's layers as one operator (paddle_resnet/speed/fused_norm_conv.py):
the values, gradients and running statistics of the per-layer path, the same parameters
and checkpoints, Paddle's own path in evaluation, and which layers it takes."""
import numpy as np
import paddle
import pytest

from conftest import assert_fused_steps_repeat, assert_same_passes, assert_same_training
from paddle_resnet.engine.step import speed_options, training_model
from paddle_resnet.models import build_model
from paddle_resnet.models.densenet import DenseLayer, Transition
from paddle_resnet.speed import native_bf16, plan_speed
from paddle_resnet.speed.fused_norm_conv import (OP, FusedDenseLayer, FusedTransition,
                                                 use_fused_norm_conv)
from paddle_resnet.speed.onednn_conv import run_all, use_onednn_conv


def layer_pair(fused_library, kind, in_channels, bf16):
    layers = []
    for _ in range(2):
        paddle.seed(0)
        if kind == "transition":
            layer = Transition(in_channels, in_channels // 2, data_format="NHWC")
        else:
            layer = DenseLayer(in_channels, 12, kind == "bottleneck", data_format="NHWC")
        for bn in [m for m in layer.sublayers() if isinstance(m, paddle.nn.BatchNorm2D)]:
            channels = bn.weight.shape  # BN parameters away from their 1/0 initial values
            bn.weight.set_value(paddle.rand(channels) + 0.5)
            bn.bias.set_value(0.1 * paddle.randn(channels))
        layers.append(layer)
    reference, fused = layers
    # a fused transition convolves in float32 (norm_conv.cc): so does its reference
    use_onednn_conv(reference, fused_library, bf16 and kind != "transition")
    use_onednn_conv(fused, fused_library, bf16)
    assert use_fused_norm_conv(fused, fused_library, bf16) == 1
    assert type(fused) is (FusedTransition if kind == "transition" else FusedDenseLayer)
    return reference, fused


# 16 and 64 input channels take the passes over whole vectors, 28 and 148 (most of a
# DenseNet's layers) the loops over any channel count (norm_passes.cc).
# (kind, input channels, map size): a transition's pooling drops a last odd row and column.
SHAPES = {"dense layer, 16 channels": ("dense", 16, 8), "dense layer, 28": ("dense", 28, 8),
          "dense layer, 148": ("dense", 148, 8), "bottleneck, 24": ("bottleneck", 24, 8),
          "bottleneck, 64": ("bottleneck", 64, 8), "transition, 28": ("transition", 28, 8),
          "transition, 7x7 maps": ("transition", 32, 7)}


@pytest.mark.parametrize("bf16", [False, True], ids=["float32", "bf16"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_values_gradients_and_running_statistics_equal_the_per_layer_path(fused_library, shape,
                                                                          bf16):
    if bf16 and not native_bf16():
        pytest.skip("oneDNN emulates bf16 without AVX-512 BF16 or AMX")
    kind, in_channels, size = SHAPES[shape]
    reference, fused = layer_pair(fused_library, kind, in_channels, bf16)
    # float32: the paths differ in the order of BN's sums (and a transition's pooling and
    # convolution in their order); bf16: both round the same convolution inputs and output
    # gradients, which leaves differences of bf16's rounding where BN's float32 sums round
    # a value across a bf16 boundary (measured up to 9e-5 of the largest value); a
    # transition convolves in float32 on both sides here.
    tolerance = 2e-3 if bf16 and kind != "transition" else 1e-5
    assert_same_passes(reference, fused, [4, size, size, in_channels], tolerance)


def test_the_pooled_transition_rounds_no_further_from_float32_than_the_per_layer_path(
        fused_library):
    """With bf16 inputs the fused transition's output is closer to the float32 one than the
    per-layer path's: pooled first, its 1x1 convolution runs in float32 on a quarter of
    the pixels (rounded to bf16 it measured 1.14x the per-layer path's error)."""
    if not native_bf16():
        pytest.skip("oneDNN emulates bf16 without AVX-512 BF16 or AMX")
    exact, fused = layer_pair(fused_library, "transition", 64, bf16=True)  # exact: float32
    per_layer = Transition(64, 32, data_format="NHWC")
    per_layer.set_state_dict(exact.state_dict())
    use_onednn_conv(per_layer, fused_library, True)
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal([8, 8, 8, 64]), "float32")
    expected = exact(x).numpy()
    errors = {key: float(np.abs(layer(x).numpy() - expected).mean())
              for key, layer in (("per_layer", per_layer), ("fused", fused))}
    assert errors["fused"] < errors["per_layer"] / 10, errors


@pytest.mark.parametrize("channels", [16, 28])
def test_the_normalize_pass_rounds_each_operation_as_written(fused_library, channels):
    """BN's scale and shift and the ReLU as NumPy's float32 computes them, bit for bit, in
    the pass over whole vectors (16 channels) and over any count (28) alike."""
    _, layer = layer_pair(fused_library, "dense", channels, bf16=False)
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal([4, 8, 8, channels]),
                         "float32")
    bn = layer.bn2
    y, a, stats = run_all(OP, x, bn.weight, bn.bias, bn._mean, bn._variance,
                          layer.conv2.weight, float(bn._epsilon), float(bn._momentum), True,
                          False, False)
    mean, inv_std, scale, shift = stats.numpy()
    np.testing.assert_array_equal(scale, bn.weight.numpy() * inv_std)
    np.testing.assert_array_equal(shift, bn.bias.numpy() - mean * scale)
    expected = x.numpy() * scale + shift
    np.testing.assert_array_equal(a.numpy(), np.where(expected < 0, np.float32(0), expected))
    np.testing.assert_allclose(mean, x.numpy().mean(axis=(0, 1, 2)), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y.numpy()[..., :channels], x.numpy())  # the concatenation
    assert y.shape == [4, 8, 8, channels + 12]


def test_the_operator_refuses_a_kernel_it_does_not_pad(fused_library):
    x = paddle.randn([2, 4, 4, 8])
    gamma, beta = paddle.ones([8]), paddle.zeros([8])
    with pytest.raises(Exception, match="a square kernel of odd size expected"):
        run_all(OP, x, gamma, beta, paddle.zeros([8]), paddle.ones([8]),
                paddle.randn([12, 8, 2, 2]), 1e-5, 0.9, False, False, False)


@pytest.mark.parametrize("kind", ["dense", "bottleneck", "transition"])
def test_evaluation_takes_the_per_layer_path(fused_library, kind):
    reference, fused = layer_pair(fused_library, kind, 24, bf16=False)
    reference.eval(), fused.eval()
    x = paddle.randn([4, 8, 8, 24])
    np.testing.assert_array_equal(fused(x).numpy(), reference(x).numpy())


# DenseNet-40: 36 dense layers and 2 transitions; DenseNet-BC-100: 48 and 2; the CIFAR
# DenseNet-121: 58 and 3.
@pytest.mark.parametrize("name, fused_layers", [("densenet40_k12", 38),
                                                ("densenet_bc_100_k12", 50),
                                                ("densenet121", 61), ("resnet20", 0)])
def test_which_layers_it_takes_and_the_checkpoint_keys(fused_library, name, fused_layers):
    plan = plan_speed(speed_options(["fused_block=true"]), "cpu", 2)
    model = training_model(name, plan)
    found = sum(type(layer) in (FusedDenseLayer, FusedTransition)
                for layer in model.sublayers())
    assert found == fused_layers == model.speed_paths["fused_norm_conv"]
    assert list(model.state_dict()) == list(build_model(name).state_dict())
    # the run header names the fused operators the model took, and only those
    applied = plan.as_applied(model.speed_paths).describe()
    assert ("dense layers and transitions: one operator each" in applied) is (fused_layers > 0)
    assert ("basic blocks: one operator each" in applied) is (name == "resnet20")


@pytest.mark.parametrize("name", ["densenet40_k12", "densenet_bc_100_k12"])
def test_densenet_trains_the_same_steps_as_the_per_layer_path(fused_library, name):
    """Three steps of the package's train_step in float32: the loss and the weights of the
    fused DenseNet stay those of the per-layer one to float32 rounding."""
    models = {}
    for key, fused in (("fused", "true"), ("per_layer", "false")):
        plan = plan_speed(speed_options([f"fused_block={fused}", "conv_bf16=false"]), "cpu", 2)
        paddle.seed(0)
        models[key] = training_model(name, plan)
    assert_same_training(models, loss_rtol=1e-4, weight_atol=1e-3)


@pytest.mark.parametrize("bf16", ["true", "false"], ids=["default", "float32"])
def test_the_fused_steps_repeat_bit_for_bit(fused_library, bf16):
    """What exact resume rests on: the same fused steps from the same state end on the same
    weights to the bit (bf16 inputs where the CPU has them, as the default trains; and in
    float32, as a CPU without bf16 kernels trains by default)."""
    assert_fused_steps_repeat("densenet_bc_100_k12", bf16)

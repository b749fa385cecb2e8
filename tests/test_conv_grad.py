"""The input gradient of stride-1 convolutions as a forward convolution (speed.conv_input_grad):
the same gradients as Paddle's conv2d_grad, the same parameters, only where it is valid."""
import numpy as np
import paddle
import paddle.nn as nn
import pytest

from paddle_resnet.config import load_config
from paddle_resnet.engine.trainer import Trainer
from paddle_resnet.models import build_model
from paddle_resnet.speed import conv_grad
from paddle_resnet.speed.conv_grad import InputGradConv2D, use_conv_for_input_grad

ELIGIBLE = [  # (kernel, padding, data_format, bias)
    (3, 1, "NCHW", False), (3, 0, "NCHW", True), (1, 0, "NCHW", False),
    (5, 2, "NCHW", True), (3, [1, 0], "NCHW", False), (3, 1, "NHWC", True),
]


def layer_pair(kernel, padding, data_format, bias, **kwargs):
    """Two copies of one convolution: Paddle's own, and one switched to InputGradConv2D."""
    paddle.seed(0)
    make = lambda: nn.Conv2D(4, 6, kernel, padding=padding, data_format=data_format,  # noqa
                             bias_attr=None if bias else False, **kwargs)
    plain, switched = make(), make()
    switched.set_state_dict(plain.state_dict())
    return plain, switched


def grads(layer, x_np):
    x = paddle.to_tensor(x_np, stop_gradient=False)
    out = layer(x)
    # A loss whose output gradient is not constant, so that every position matters.
    (out * paddle.arange(out.size, dtype="float32").reshape(out.shape).sin()).sum().backward()
    found = {"out": out.numpy(), "x": x.grad.numpy(), "weight": layer.weight.grad.numpy()}
    if layer.bias is not None:
        found["bias"] = layer.bias.grad.numpy()
    return found


@pytest.mark.parametrize("kernel,padding,data_format,bias", ELIGIBLE)
def test_gradients_equal_paddles_conv2d_grad(kernel, padding, data_format, bias):
    plain, switched = layer_pair(kernel, padding, data_format, bias)
    assert use_conv_for_input_grad(switched) == 1 and type(switched) is InputGradConv2D
    shape = [3, 4, 9, 7] if data_format == "NCHW" else [3, 9, 7, 4]
    x_np = np.random.default_rng(1).standard_normal(shape).astype("float32")
    expected, found = grads(plain, x_np), grads(switched, x_np)
    np.testing.assert_array_equal(found["out"], expected["out"])
    assert found["x"].shape == tuple(shape)
    for key in expected:
        np.testing.assert_allclose(found[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


def test_the_input_gradient_comes_from_a_forward_convolution(monkeypatch):
    plain, switched = layer_pair(3, 1, "NCHW", False)
    use_conv_for_input_grad(switched)
    calls = []
    forward_conv = conv_grad.F.conv2d
    monkeypatch.setattr(conv_grad.F, "conv2d",
                        lambda *a, **k: calls.append(k.get("padding")) or forward_conv(*a, **k))
    grads(switched, np.ones([2, 4, 5, 5], "float32"))
    # The layer's forward pass, then the input gradient with padding k - 1 - p.
    assert calls == [1, [1, 1]]


@pytest.mark.parametrize("kwargs", [
    {"stride": 2}, {"dilation": 2}, {"groups": 2}, {"padding": "same"},
    {"padding": 1, "padding_mode": "reflect"}, {"kernel": 1, "padding": 1},
    {"padding": [1, 1, 0, 0]},
])
def test_other_convolutions_keep_paddles_kernel(kwargs):
    kwargs = {"kernel": 3, "padding": 1, **kwargs}
    layer = nn.Conv2D(4, 6, kwargs.pop("kernel"), **kwargs)
    assert use_conv_for_input_grad(layer) == 0 and type(layer) is nn.Conv2D


@pytest.mark.parametrize("in_channels,out_channels,switched", [
    (16, 16, True), (32, 32, True), (64, 64, False), (512, 512, False), (160, 12, True),
    (256, 64, True), (64, 256, False),
])
def test_only_layers_where_it_was_faster_are_switched(in_channels, out_channels, switched):
    layer = nn.Conv2D(in_channels, out_channels, 3, padding=1)
    assert use_conv_for_input_grad(layer) == int(switched)


def test_a_model_keeps_its_parameters_and_names():
    paddle.seed(0)
    model = build_model("resnet20")
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    # ResNet-20: the stem (3 -> 16), then 6, 6 and 6 block convolutions of 16, 32 and 64
    # channels; each later stage opens with a stride-2 one, and 64 channels keep Paddle's.
    assert use_conv_for_input_grad(model) == 1 + 6 + 5
    after = model.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key].numpy(), value)
    stride_two = [layer for layer in model.sublayers() if isinstance(layer, nn.Conv2D)
                  and list(layer._stride) == [2, 2]]
    assert len(stride_two) == 2 and all(type(layer) is nn.Conv2D for layer in stride_two)
    assert use_conv_for_input_grad(build_model("resnet18")) == 0


def test_inputs_without_gradient_and_evaluation_take_paddles_path():
    plain, switched = layer_pair(3, 1, "NCHW", False)
    use_conv_for_input_grad(switched)
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal([2, 4, 6, 6]), "float32")
    with paddle.no_grad():
        np.testing.assert_array_equal(switched(x).numpy(), plain(x).numpy())
    switched(x).sum().backward()  # x needs no gradient: only the weight's is computed
    plain(x).sum().backward()
    np.testing.assert_array_equal(switched.weight.grad.numpy(), plain.weight.grad.numpy())


@pytest.mark.parametrize("override,expected", [([], InputGradConv2D),
                                               (["speed.conv_input_grad=false"], nn.Conv2D)])
def test_training_on_paddles_convolution_uses_it_by_default(tiny_cifar10, tmp_path, override,
                                                            expected):
    cfg = load_config("configs/quickstart.yaml", [f"data.data_file={tiny_cifar10}",
                                                  f"output_dir={tmp_path}", "speed.conv=paddle",
                                                  *override])
    with open("/dev/null", "w") as quiet:
        trainer = Trainer(cfg, stream=quiet)
        trainer._build()
    block_conv = trainer.model.layer1[0].conv1
    assert type(block_conv) is expected

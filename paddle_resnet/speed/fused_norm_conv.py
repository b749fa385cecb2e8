"""DenseNet's layers as one custom operator each (onednn/norm_conv.cc): batch
normalization with the batch's statistics, the ReLU and the convolution forward in one
dispatch, their backward in another, instead of Paddle's BN and ReLU kernels (and their
gradients) in float32 around a oneDNN convolution that rounds its input to bf16 again.

A dense layer, BN-ReLU-conv3x3 and the concatenation of its input and output
(DenseNet-40), is one operator, the concatenation included; so is one with a
BN-ReLU-conv1x1 bottleneck before it (DenseNet-BC). A transition, BN-ReLU-conv1x1 and 2x2
average pooling, is one operator that pools before its convolution (the same maps: both
are linear, on different axes; a quarter of the work). The network's last BN stays
Paddle's. Parameters, buffers and checkpoints are the plain layers'; evaluation, a static
graph, a GPU and other dtypes take the per-layer path. The results are the per-layer
path's to float32 rounding (tests/test_fused_norm_conv.py), bf16 inputs where it rounds
them; a transition's convolution, on a quarter of the pixels, stays float32 (norm_conv.cc
says why).
"""
import paddle
import paddle.nn as nn

from ..models.densenet import DenseLayer, Transition
from .fused_block import norm_inputs, plain_conv
from .onednn_conv import on_fast_path, register, run_all
from .onednn_norm import eligible as training_bn

OP, BOTTLENECK_OP = "fused_bn_relu_conv", "fused_dense_bottleneck"


def fusable(bn: nn.Layer, conv: nn.Layer) -> bool:
    """A training BN followed (through a ReLU) by a 1x1 or 3x3 convolution the operator
    takes: NHWC, stride 1, the size kept, no bias."""
    return (isinstance(conv, nn.Conv2D) and training_bn(bn)
            and any(plain_conv(conv, kernel, 1) for kernel in (1, 3)))


def bn_relu_conv(bn: nn.BatchNorm2D, conv: nn.Conv2D, x: paddle.Tensor, bf16: bool,
                 concat: bool = False, pool: bool = False) -> paddle.Tensor:
    """conv(relu(bn(x))) in training, as one operator (x NHWC, float32, on the CPU); with
    `concat`, x and it concatenated along channels; with `pool`, its 2x2 average pooling
    (a 1x1 `conv`)."""
    return run_all(OP, x.contiguous(), *norm_inputs(bn), conv.weight, float(bn._epsilon),
                   float(bn._momentum), concat, pool, bf16)[0]


def halving_pool(pool: nn.Layer) -> bool:
    """A 2x2 average pooling of stride 2 without padding, in NHWC: the transitions'."""
    return (type(pool) is nn.AvgPool2D and pool.ksize in (2, [2, 2], (2, 2))
            and pool.stride in (None, 2, [2, 2], (2, 2)) and pool.padding in (0, [0, 0])
            and not pool.ceil_mode and pool.divisor is None and pool.data_format == "NHWC")


class FusedDenseLayer(DenseLayer):
    """`DenseLayer` whose dygraph CPU training pass is one operator, its BN-ReLU-
    convolution(s) and the concatenation (module docstring)."""

    def forward(self, x):
        if not (self.training and on_fast_path(x)):
            return super().forward(x)
        if not self.bottleneck:
            return bn_relu_conv(self.bn2, self.conv2, x, self._fused_bf16, concat=True)
        return run_all(BOTTLENECK_OP, x.contiguous(), *norm_inputs(self.bn1), self.conv1.weight,
                       *norm_inputs(self.bn2), self.conv2.weight, float(self.bn1._epsilon),
                       float(self.bn1._momentum), self._fused_bf16)[0]


class FusedTransition(Transition):
    """`Transition` whose training pass is one operator, pooling before its convolution."""

    def forward(self, x):
        if not (self.training and on_fast_path(x)):
            return super().forward(x)
        return bn_relu_conv(self.bn, self.conv, x, self._fused_bf16, pool=True)


def eligible(layer: nn.Layer) -> bool:
    if type(layer) is DenseLayer:
        if not layer.bottleneck:
            return layer.axis == 3 and fusable(layer.bn2, layer.conv2)
        # one operator, one epsilon and momentum for both of its BNs
        return (layer.axis == 3 and fusable(layer.bn1, layer.conv1)
                and fusable(layer.bn2, layer.conv2)
                and (layer.bn1._epsilon, layer.bn1._momentum)
                == (layer.bn2._epsilon, layer.bn2._momentum))
    return (type(layer) is Transition and fusable(layer.bn, layer.conv)
            and plain_conv(layer.conv, 1, 1) and halving_pool(layer.pool))


FUSED = {DenseLayer: FusedDenseLayer, Transition: FusedTransition}


def use_fused_norm_conv(model: nn.Layer, library: str, bf16: bool) -> int:
    """Switch every eligible dense layer and transition of `model` in place; returns how
    many."""
    register(library)
    switched = 0
    for layer in model.sublayers(include_self=True):
        if eligible(layer):
            layer.__class__ = FUSED[type(layer)]
            layer._fused_bf16 = bool(bf16)
            switched += 1
    return switched

"""Batch normalization through oneDNN in training, fused with the ReLU after it, and a
residual block's tail `relu(bn(x) + shortcut)` as oneDNN's normalization and one
add-and-ReLU pass (onednn/batch_norm.cc).

Paddle's CPU BatchNorm, ReLU and add kernels, forward and backward, took ~17% of
ResNet-20's training step after the convolutions moved to oneDNN; oneDNN does the same
work in one NHWC pass with the ReLU's mask in a bit workspace (its add+ReLU fusion refuses
NHWC, so the residual tail is a pass of the package's own). The statistics are the
batch's (variance divided by N*H*W) and the running mean and variance are updated as
Paddle's BatchNorm updates them (`running = momentum * running + (1 - momentum) *
batch`), so parameters, buffers and checkpoints are unchanged; values equal Paddle's to
float32 rounding (tests/test_onednn_norm.py).

`use_onednn_norm(model)` switches in place: NHWC `nn.BatchNorm2D` layers to
`OneDNNBatchNorm2D` (the normalization alone), and the residual blocks' forward passes to
the fused forms. Evaluation (running statistics), static graphs, GPUs and other dtypes
take Paddle's own kernels.
"""
import paddle
import paddle.nn as nn
from paddle.autograd import PyLayer

from ..models.resnet import BasicBlock, Bottleneck
from .onednn_conv import on_fast_path, run_all


def only_needed(grads, needs):
    # A PyLayer returns None for each input that needs no gradient (Paddle checks).
    return tuple(g if need else None for g, need in zip(grads, needs))


def _update_running(layer: nn.BatchNorm2D, mean, variance):
    momentum = layer._momentum
    paddle.assign(layer._mean * momentum + mean * (1 - momentum), output=layer._mean)
    paddle.assign(layer._variance * momentum + variance * (1 - momentum),
                  output=layer._variance)


class _BatchNorm(PyLayer):
    @staticmethod
    def forward(ctx, x, scale, shift, layer, relu):
        y, mean, variance, workspace = run_all("onednn_batch_norm", x, scale, shift,
                                               layer._epsilon, relu)
        _update_running(layer, mean, variance)
        ctx.save_for_backward(x, scale, mean, variance, workspace)
        ctx.config = (layer._epsilon, relu)
        ctx.needs = [not t.stop_gradient for t in (x, scale, shift)]
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, scale, mean, variance, workspace = ctx.saved_tensor()
        grads = run_all("onednn_batch_norm_backward", grad_y.contiguous(), x, scale, mean,
                        variance, workspace, *ctx.config)
        return only_needed(grads, ctx.needs)


class _AddRelu(PyLayer):
    @staticmethod
    def forward(ctx, a, b):
        y = run_all("add_relu", a.contiguous(), b.contiguous())[0]
        ctx.save_for_backward(y)
        ctx.needs = [not a.stop_gradient, not b.stop_gradient]
        return y

    @staticmethod
    def backward(ctx, grad_y):
        (y,) = ctx.saved_tensor()
        return only_needed(run_all("add_relu_backward", y, grad_y.contiguous()), ctx.needs)


def fused(layer: nn.BatchNorm2D, x: paddle.Tensor) -> bool:
    return (layer.training and type(layer) is OneDNNBatchNorm2D and on_fast_path(x))


def bn_relu(layer: nn.BatchNorm2D, x: paddle.Tensor) -> paddle.Tensor:
    if not fused(layer, x):
        return paddle.nn.functional.relu(layer(x))
    return _BatchNorm.apply(x.contiguous(), layer.weight, layer.bias, layer, True)


def bn_add_relu(layer: nn.BatchNorm2D, x: paddle.Tensor, residual: paddle.Tensor
                ) -> paddle.Tensor:
    if not fused(layer, x):
        return paddle.nn.functional.relu(layer(x) + residual)
    return _AddRelu.apply(layer(x), residual)


class OneDNNBatchNorm2D(nn.BatchNorm2D):
    """`nn.BatchNorm2D` (NHWC) whose training pass runs on oneDNN (module docstring)."""

    def forward(self, x):
        if not (self.training and on_fast_path(x)):
            return super().forward(x)
        return _BatchNorm.apply(x.contiguous(), self.weight, self.bias, self, False)


class OneDNNBasicBlock(BasicBlock):
    def forward(self, x):
        out = bn_relu(self.bn1, self.conv1(x))
        out = self.conv2(out)
        if self.shortcut is None:  # a plain net's block
            return bn_relu(self.bn2, out)
        return bn_add_relu(self.bn2, out, self.shortcut(x))


class OneDNNBottleneck(Bottleneck):
    def forward(self, x):
        out = bn_relu(self.bn1, self.conv1(x))
        out = bn_relu(self.bn2, self.conv2(out))
        out = self.conv3(out)
        if self.shortcut is None:
            return bn_relu(self.bn3, out)
        return bn_add_relu(self.bn3, out, self.shortcut(x))


FUSED_BLOCKS = {BasicBlock: OneDNNBasicBlock, Bottleneck: OneDNNBottleneck}


def eligible(layer: nn.Layer) -> bool:
    return (type(layer) is nn.BatchNorm2D and layer._data_format == "NHWC"
            and not layer._use_global_stats and layer.weight is not None
            and layer.bias is not None)


def use_onednn_norm(model: nn.Layer) -> int:
    """Switch `model`'s NHWC batch normalizations and residual blocks in place; returns
    how many batch normalizations now run on oneDNN."""
    switched = 0
    for layer in model.sublayers(include_self=True):
        if type(layer) in FUSED_BLOCKS:
            layer.__class__ = FUSED_BLOCKS[type(layer)]
        if eligible(layer):
            layer.__class__ = OneDNNBatchNorm2D
            switched += 1
    return switched

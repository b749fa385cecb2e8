"""A residual basic block's training pass as one custom operator (onednn/basic_block.cc):
conv-BN-ReLU-conv-BN(+shortcut)-ReLU forward in one dispatch, and its backward as the
operator's own gradient kernel in another, instead of ~16 dygraph dispatches per block.

The convolutions are the same oneDNN primitives as `onednn_conv.py`'s (bf16 inputs where
the plan convolves in bf16); batch normalization, the ReLUs, the residual add and their
gradients are the operator's own passes over NHWC memory, with the batch's statistics and
Paddle's running-average update, so parameters, buffers and checkpoints are those of the
plain block.

Fused: `BasicBlock`s in NHWC whose convolutions are 3x3, padding 1, no bias, and whose
shortcut is the identity, option A (ResNet-20/32/44/56/110's), none (the plain nets) or a
1x1 projection + BN (options B and C: ResNet-18/34's stage transitions, a second
operator). Bottlenecks, evaluation, a static graph, a GPU and other dtypes take the
per-layer path, unchanged.
"""
from typing import Optional, Tuple

import paddle.nn as nn

from ..models.resnet import BasicBlock, ProjectionShortcut, ShortcutA
from .onednn_conv import OneDNNShortcutA, on_fast_path, paddings_of, register, run_all
from .onednn_conv import eligible as onednn_conv_eligible
from .onednn_norm import eligible as training_bn

OP, PROJECTION_OP = "fused_basic_block", "fused_basic_block_projection"
# The operator's shortcut codes (basic_block.cc's `Shortcut`).
NO_SHORTCUT, IDENTITY, OPTION_A, PROJECTION = 0, 1, 2, 3


def plain_conv(conv: nn.Layer, kernel: int, stride: int) -> bool:
    """A convolution the per-layer oneDNN path takes, with the block's geometry: a square
    kernel padded to keep the size, one stride, no bias."""
    return (onednn_conv_eligible(conv) and conv.bias is None
            and list(conv._kernel_size) == [kernel, kernel]
            and list(conv._stride) == [stride, stride]
            and paddings_of(conv) == [(kernel - 1) // 2] * 4)


def shortcut_code(shortcut: Optional[nn.Layer]) -> Optional[Tuple[int, int]]:
    """(the operator's shortcut code, option A's leading zero channels), or None where the
    operator has no such shortcut."""
    if shortcut is None:
        return NO_SHORTCUT, 0
    if type(shortcut) is nn.Identity:
        return IDENTITY, 0
    if type(shortcut) in (ShortcutA, OneDNNShortcutA) and shortcut.axis == 3:
        return OPTION_A, shortcut.pad_before
    if type(shortcut) is ProjectionShortcut:
        return PROJECTION, 0
    return None


def eligible(block: nn.Layer) -> bool:
    if not isinstance(block, BasicBlock) or shortcut_code(block.shortcut) is None:
        return False
    stride = block.conv1._stride[0] if isinstance(block.conv1, nn.Conv2D) else None
    norms = [block.bn1, block.bn2]
    if type(block.shortcut) is ProjectionShortcut:
        if not plain_conv(block.shortcut.conv, 1, stride):
            return False
        norms.append(block.shortcut.bn)
    return (plain_conv(block.conv1, 3, stride) and plain_conv(block.conv2, 3, 1)
            and all(training_bn(bn) for bn in norms)
            and len({(bn._epsilon, bn._momentum) for bn in norms}) == 1)


def norm_inputs(bn: nn.BatchNorm2D):
    return bn.weight, bn.bias, bn._mean, bn._variance


class FusedBasicBlock(BasicBlock):
    """`BasicBlock` whose dygraph CPU training pass is one operator (module docstring)."""

    def forward(self, x):
        if not (self.training and on_fast_path(x)):
            return super().forward(x)
        code, pad_before = shortcut_code(self.shortcut)
        stride = int(self.conv1._stride[0])
        inputs = (x, self.conv1.weight, *norm_inputs(self.bn1), self.conv2.weight,
                  *norm_inputs(self.bn2))
        numbers = (float(self.bn1._epsilon), float(self.bn1._momentum), self._fused_bf16)
        if code == PROJECTION:
            projection = self.shortcut
            return run_all(PROJECTION_OP, *inputs, projection.conv.weight,
                           *norm_inputs(projection.bn), stride, *numbers)[0]
        return run_all(OP, *inputs, stride, code, pad_before, *numbers)[0]


def use_fused_blocks(model: nn.Layer, library: str, bf16: bool) -> int:
    """Switch every eligible basic block of `model` in place; returns how many."""
    register(library)
    switched = 0
    for layer in model.sublayers(include_self=True):
        if eligible(layer):
            layer.__class__ = FusedBasicBlock
            layer._fused_bf16 = bool(bf16)
            switched += 1
    return switched

"""A residual basic block's training pass as one custom operator (onednn/basic_block.cc):
conv-BN-ReLU-conv-BN(+shortcut)-ReLU forward in one dispatch, and its backward as the
operator's own gradient kernel in another, instead of ~16 dygraph dispatches per block.

The convolutions are the same oneDNN primitives as `onednn_conv.py`'s (bf16 inputs where
the plan convolves in bf16); batch normalization, the ReLUs, the residual add and their
gradients are the operator's own passes over NHWC memory, with the batch's statistics and
Paddle's running-average update, so parameters, buffers and checkpoints are those of the
plain block.

Fused: `BasicBlock`s in NHWC whose convolutions are 3x3, padding 1, no bias, and whose
shortcut is the identity, option A (ResNet-20/32/44/56/110's) or none (the plain nets).
Option-B and -C projections (ResNet-18's stage transitions), bottlenecks, evaluation, a
static graph, a GPU and other dtypes take the per-layer path, unchanged.
"""
from typing import Optional, Tuple

import paddle.nn as nn

from ..models.resnet import BasicBlock, ShortcutA
from .onednn_conv import OneDNNShortcutA, on_fast_path, register, run_all

OP = "fused_basic_block"
# The operator's shortcut codes (basic_block.cc's `Shortcut`).
NO_SHORTCUT, IDENTITY, OPTION_A = 0, 1, 2


def _plain_conv3x3(conv: nn.Layer, stride: int) -> bool:
    return (isinstance(conv, nn.Conv2D) and conv._data_format == "NHWC" and conv.bias is None
            and list(conv._kernel_size) == [3, 3] and list(conv._stride) == [stride, stride]
            and conv._groups == 1 and list(conv._dilation) == [1, 1]
            and conv._padding_mode == "zeros" and conv._padding in (1, [1, 1], [1, 1, 1, 1]))


def _training_bn(bn: nn.Layer) -> bool:
    return (isinstance(bn, nn.BatchNorm2D) and bn._data_format == "NHWC"
            and not bn._use_global_stats and bn.weight is not None and bn.bias is not None)


def shortcut_code(shortcut: Optional[nn.Layer]) -> Optional[Tuple[int, int]]:
    """(the operator's shortcut code, option A's leading zero channels), or None where the
    operator has no such shortcut."""
    if shortcut is None:
        return NO_SHORTCUT, 0
    if type(shortcut) is nn.Identity:
        return IDENTITY, 0
    if type(shortcut) in (ShortcutA, OneDNNShortcutA) and shortcut.axis == 3:
        return OPTION_A, shortcut.pad_before
    return None


def eligible(block: nn.Layer) -> bool:
    if not isinstance(block, BasicBlock) or shortcut_code(block.shortcut) is None:
        return False
    stride = block.conv1._stride[0] if isinstance(block.conv1, nn.Conv2D) else None
    return (_plain_conv3x3(block.conv1, stride) and _plain_conv3x3(block.conv2, 1)
            and _training_bn(block.bn1) and _training_bn(block.bn2)
            and block.bn1._epsilon == block.bn2._epsilon
            and block.bn1._momentum == block.bn2._momentum)


class FusedBasicBlock(BasicBlock):
    """`BasicBlock` whose dygraph CPU training pass is one operator (module docstring)."""

    def forward(self, x):
        if not (self.training and on_fast_path(x)):
            return super().forward(x)
        code, pad_before = shortcut_code(self.shortcut)
        bn1, bn2 = self.bn1, self.bn2
        outputs = run_all(OP, x, self.conv1.weight, bn1.weight, bn1.bias, bn1._mean,
                          bn1._variance, self.conv2.weight, bn2.weight, bn2.bias, bn2._mean,
                          bn2._variance, int(self.conv1._stride[0]), code, pad_before,
                          float(bn1._epsilon), float(bn1._momentum), self._fused_bf16)
        return outputs[0]


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

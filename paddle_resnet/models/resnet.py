"""Residual networks for 32x32 inputs, and their plain (no-shortcut) twins.

Two families share one `ResNet` class:

* ResNet-18/34/50/101/152 (He et al., "Deep Residual Learning for Image Recognition",
  CVPR 2016, Table 1) with the ImageNet stem replaced by a 3x3 stride-1 convolution and
  no max-pool, so 32x32 inputs keep their resolution; stages of 64/128/256/512 filters;
  option-B shortcuts.
* The paper's CIFAR networks (Sec. 4.2): 6n+2 layers, a 3x3 stem of 16 filters, three
  stages of n basic blocks with 16/32/64 filters on 32/16/8 maps, global average pool,
  fully-connected layer; option-A shortcuts.

    depth   n    params (option A, 10 classes)   paper's CIFAR-10 error
    20      3      0.27M                          8.75%
    32      5      0.46M                          7.51%
    44      7      0.66M                          7.17%
    56      9      0.85M                          6.97%
    110    18      1.7M                           6.43%
    1202  200     19.4M                           7.93%

Shortcut options (Sec. 3.3): A adds zero-padded identity shortcuts where the shape
changes (no parameters); B projects with a 1x1 convolution only there; C projects on
every block.
"""
from typing import List, Optional, Sequence, Type, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import batch_norm, channel_axis, conv1x1, conv3x3, linear, to_layout
from .registry import register_model

SHORTCUT_OPTIONS = ("A", "B", "C")  # He et al. Sec. 3.3; the schema's choices for it
class ShortcutA(nn.Layer):
    """Option A: subsample by the stride and zero-pad the new channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 data_format: str = "NCHW"):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError("option-A shortcuts can only add channels")
        self.stride = stride
        self._in_channels = in_channels
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before
        self.axis = channel_axis(data_format)

    def zeros(self, x, channels: int):
        return [paddle.zeros_like(paddle.slice(x, [self.axis], [0], [channels]))]

    def forward(self, x):
        if self.stride > 1:
            s = self.stride
            x = x[:, :, ::s, ::s] if self.axis == 1 else x[:, ::s, ::s, :]
        # Zeros are concatenated rather than F.pad-ded on the channel axis: Paddle
        # Inference's oneDNN pad kernel corrupts the heap on that (Paddle 3.3.1).
        before = self.zeros(x, self.pad_before) if self.pad_before else []
        after = self.zeros(x, self.pad_after) if self.pad_after else []
        return paddle.concat(before + [x] + after, axis=self.axis) if before or after else x


class ProjectionShortcut(nn.Layer):
    """Options B and C: a strided 1x1 convolution and BN onto the block's output shape."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 data_format: str = "NCHW"):
        super().__init__()
        self.conv = conv1x1(in_channels, out_channels, stride, data_format)
        self.bn = batch_norm(out_channels, data_format=data_format)

    def forward(self, x):
        return self.bn(self.conv(x))


def make_shortcut(option: str, in_channels: int, out_channels: int, stride: int,
                  data_format: str = "NCHW") -> nn.Layer:
    if option not in SHORTCUT_OPTIONS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUT_OPTIONS)}, got {option!r}")
    if in_channels == out_channels and stride == 1 and option != "C":
        return nn.Identity()
    if option == "A":
        return ShortcutA(in_channels, out_channels, stride, data_format)
    return ProjectionShortcut(in_channels, out_channels, stride, data_format)


class BasicBlock(nn.Layer):
    """Two 3x3 convolutions; the ReLU comes after the addition (He et al., Fig. 2)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 shortcut: Optional[nn.Layer] = None, zero_init_residual: bool = False,
                 data_format: str = "NCHW"):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride, data_format)
        self.bn1 = batch_norm(channels, data_format=data_format)
        self.conv2 = conv3x3(channels, channels, data_format=data_format)
        self.bn2 = batch_norm(channels, zero_init_residual, data_format)
        self.shortcut = shortcut

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


class Bottleneck(nn.Layer):
    """1x1 reduce, 3x3, 1x1 expand by 4 (He et al., Fig. 5). The stride sits on the 3x3
    convolution, as in torchvision and Paddle's own ResNet ("ResNet v1.5")."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1,
                 shortcut: Optional[nn.Layer] = None, zero_init_residual: bool = False,
                 data_format: str = "NCHW"):
        super().__init__()
        self.conv1 = conv1x1(in_channels, channels, data_format=data_format)
        self.bn1 = batch_norm(channels, data_format=data_format)
        self.conv2 = conv3x3(channels, channels, stride, data_format)
        self.bn2 = batch_norm(channels, data_format=data_format)
        self.conv3 = conv1x1(channels, channels * self.expansion, data_format=data_format)
        self.bn3 = batch_norm(channels * self.expansion, zero_init_residual, data_format)
        self.shortcut = shortcut

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return F.relu(out)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


def make_layer(block: Block, in_channels: int, channels: int, num_blocks: int,
               stride: int = 1, shortcut: Optional[str] = "B",
               zero_init_residual: bool = False, data_format: str = "NCHW") -> nn.Sequential:
    """Stack `num_blocks` blocks; the first carries the stride and any change of width.

    `shortcut=None` builds the plain twin: the same convolutions with no shortcuts.
    """
    blocks: List[nn.Layer] = []
    for index in range(num_blocks):
        block_stride = stride if index == 0 else 1
        out_channels = channels * block.expansion
        block_shortcut = None
        if shortcut is not None:
            block_shortcut = make_shortcut(shortcut, in_channels, out_channels, block_stride,
                                           data_format)
        blocks.append(block(in_channels, channels, block_stride, block_shortcut,
                            zero_init_residual=zero_init_residual and shortcut is not None,
                            data_format=data_format))
        in_channels = out_channels
    return nn.Sequential(*blocks)


class ResNet(nn.Layer):
    """A 3x3 stem, stages of residual blocks (stride 2 from the second on), global
    average pooling and a linear classifier. Parameter names follow torchvision:
    conv1, bn1, layer1..layerN, fc."""

    input_format = "NCHW"  # the batches' layout (layers.DATA_FORMATS)

    def __init__(self, block: Block, layers: Sequence[int], num_classes: int = 10,
                 stage_channels: Sequence[int] = (64, 128, 256, 512), stem_channels: int = 64,
                 shortcut: Optional[str] = "B", zero_init_residual: bool = False,
                 data_format: str = "NCHW"):
        super().__init__()
        channel_axis(data_format)  # rejects an unknown layout here, with the choices
        self.data_format = data_format
        if len(layers) != len(stage_channels):
            raise ValueError("layers and stage_channels need one entry per stage")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.conv1 = conv3x3(3, stem_channels, data_format=data_format)
        self.bn1 = batch_norm(stem_channels, data_format=data_format)
        in_channels = stem_channels
        for index, (num_blocks, channels) in enumerate(zip(layers, stage_channels)):
            stage = make_layer(block, in_channels, channels, num_blocks,
                               stride=1 if index == 0 else 2, shortcut=shortcut,
                               zero_init_residual=zero_init_residual, data_format=data_format)
            setattr(self, f"layer{index + 1}", stage)
            in_channels = channels * block.expansion
        self.num_stages = len(layers)
        self.pool = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        self.fc = linear(in_channels, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(to_layout(x, self.data_format, self.input_format))))
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(paddle.flatten(self.pool(x), 1))


HE = "He et al. 2016 (arXiv:1512.03385)"
_CIFAR = f"{HE}, Sec. 4.2, Table 6"
_IMAGENET = f"{HE}, Table 1, with a 3x3 stem and no max-pool"
_PLAIN_CIFAR = f"{HE}, plain net of Sec. 4.2, Fig. 6"


@register_model(reference=f"{_CIFAR}, any depth 6n+2")
def cifar_resnet(depth: int, num_classes: int = 10, shortcut: Optional[str] = "A",
                 zero_init_residual: bool = False, data_format: str = "NCHW") -> ResNet:
    """The paper's CIFAR ResNet of any depth 6n+2; `shortcut=None` gives the plain net."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"a CIFAR ResNet has 6n+2 layers (20, 32, 44, 56, 110, ...), got depth {depth!r}"
        )
    n = (depth - 2) // 6
    return ResNet(BasicBlock, [n, n, n], num_classes, stage_channels=(16, 32, 64),
                  stem_channels=16, shortcut=shortcut, zero_init_residual=zero_init_residual,
                  data_format=data_format)


@register_model(reference=_IMAGENET, takes=ResNet)
def resnet18(**kwargs):
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)
@register_model(reference=_IMAGENET, takes=ResNet)
def resnet34(**kwargs):
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)
@register_model(reference=_IMAGENET, takes=ResNet)
def resnet50(**kwargs):
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)
@register_model(reference=_IMAGENET, takes=ResNet)
def resnet101(**kwargs):
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)
@register_model(reference=_IMAGENET, takes=ResNet)
def resnet152(**kwargs):
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


@register_model(reference="ResNet-18's basic blocks, one per stage at 64/128/256")
def resnet9(num_classes: int = 10, stem_channels: int = 64, shortcut: Optional[str] = "B",
            zero_init_residual: bool = False, data_format: str = "NCHW"):
    return ResNet(BasicBlock, [1, 1, 1], num_classes, stage_channels=(64, 128, 256),
                  stem_channels=stem_channels, shortcut=shortcut,
                  zero_init_residual=zero_init_residual, data_format=data_format)


@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet20(**kwargs):
    return cifar_resnet(20, **kwargs)
@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet32(**kwargs):
    return cifar_resnet(32, **kwargs)
@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet44(**kwargs):
    return cifar_resnet(44, **kwargs)
@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet56(**kwargs):
    return cifar_resnet(56, **kwargs)
@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet110(**kwargs):
    return cifar_resnet(110, **kwargs)
@register_model(reference=_CIFAR, takes=cifar_resnet)
def resnet1202(**kwargs):
    return cifar_resnet(1202, **kwargs)


# Plain twins for the degradation experiment (He et al., Sec. 4.1-4.2, Fig. 6): the same
# stacks of convolutions with every shortcut removed.
@register_model(family="plain", reference=f"{HE}, plain net of Table 1 / Fig. 4")
def plain18(num_classes: int = 10, data_format: str = "NCHW"):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=f"{HE}, plain net of Table 1 / Fig. 4")
def plain34(num_classes: int = 10, data_format: str = "NCHW"):
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=f"{_PLAIN_CIFAR}, any depth 6n+2")
def cifar_plain(depth: int, num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(depth, num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=_PLAIN_CIFAR)
def plain20(num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(20, num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=_PLAIN_CIFAR)
def plain32(num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(32, num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=_PLAIN_CIFAR)
def plain44(num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(44, num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=_PLAIN_CIFAR)
def plain56(num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(56, num_classes, shortcut=None, data_format=data_format)
@register_model(family="plain", reference=_PLAIN_CIFAR)
def plain110(num_classes: int = 10, data_format: str = "NCHW"):
    return cifar_resnet(110, num_classes, shortcut=None, data_format=data_format)

"""DenseNet baselines for 32x32 inputs (Huang et al., "Densely Connected Convolutional
Networks", CVPR 2017).

Each layer sees the concatenation of every earlier feature map in its block and adds
`growth_rate` new ones. On CIFAR the paper uses three blocks on 32/16/8 maps with a 3x3
stem; "BC" adds 1x1 bottlenecks of 4k channels (B) and halves the channels at each
transition (C, compression 0.5).

    model                 blocks         k    params   paper's C10+ error
    DenseNet (L=40)       12/12/12       12   1.0M     5.24%
    DenseNet-BC (L=100)   16/16/16       12   0.8M     4.51%
    DenseNet-121 (CIFAR)  6/12/24/16     32   7.0M     (ImageNet model, 3x3 stem)
"""
from typing import Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .registry import register_model
from .layers import batch_norm, channel_axis, conv1x1, conv3x3, linear, to_layout


class DenseLayer(nn.Layer):
    """BN-ReLU-Conv(3x3), optionally preceded by a BN-ReLU-Conv(1x1) bottleneck."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck: bool,
                 data_format: str = "NCHW"):
        super().__init__()
        self.bottleneck = bottleneck
        self.axis = channel_axis(data_format)
        if bottleneck:
            self.bn1 = batch_norm(in_channels, data_format=data_format)
            self.conv1 = conv1x1(in_channels, 4 * growth_rate, data_format=data_format)
            in_channels = 4 * growth_rate
        self.bn2 = batch_norm(in_channels, data_format=data_format)
        self.conv2 = conv3x3(in_channels, growth_rate, data_format=data_format)

    def forward(self, x):
        out = x
        if self.bottleneck:
            out = self.conv1(F.relu(self.bn1(out)))
        out = self.conv2(F.relu(self.bn2(out)))
        return paddle.concat([x, out], axis=self.axis)


class Transition(nn.Layer):
    """BN-ReLU-Conv(1x1) to compress the channels, then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, data_format: str = "NCHW"):
        super().__init__()
        self.bn = batch_norm(in_channels, data_format=data_format)
        self.conv = conv1x1(in_channels, out_channels, data_format=data_format)
        self.pool = nn.AvgPool2D(2, data_format=data_format)

    def forward(self, x):
        return self.pool(self.conv(F.relu(self.bn(x))))


class DenseNet(nn.Layer):
    input_format = "NCHW"  # the batches' layout (resnet.DATA_FORMATS)

    def __init__(self, block_config: Sequence[int], growth_rate: int = 12,
                 stem_channels: int = 24, bottleneck: bool = True, compression: float = 0.5,
                 num_classes: int = 10, data_format: str = "NCHW"):
        super().__init__()
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression!r}")
        channel_axis(data_format)  # rejects an unknown layout here, with the choices
        self.data_format = data_format
        self.conv1 = conv3x3(3, stem_channels, data_format=data_format)
        channels = stem_channels
        stages = []
        for index, num_layers in enumerate(block_config):
            layers = []
            for _ in range(num_layers):
                layers.append(DenseLayer(channels, growth_rate, bottleneck, data_format))
                channels += growth_rate
            stages.append(nn.Sequential(*layers))
            if index < len(block_config) - 1:
                out_channels = int(channels * compression)
                stages.append(Transition(channels, out_channels, data_format))
                channels = out_channels
        self.features = nn.Sequential(*stages)
        self.bn = batch_norm(channels, data_format=data_format)
        self.pool = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        self.fc = linear(channels, num_classes)

    def forward(self, x):
        x = self.features(self.conv1(to_layout(x, self.data_format, self.input_format)))
        x = self.pool(F.relu(self.bn(x)))
        return self.fc(paddle.flatten(x, 1))


HUANG = "Huang et al. 2017 (arXiv:1608.06993)"


@register_model(reference=f"{HUANG}, Table 2")
def densenet40_k12(num_classes: int = 10, data_format: str = "NCHW"):
    return DenseNet([12, 12, 12], 12, stem_channels=16, bottleneck=False, compression=1.0,
                    num_classes=num_classes, data_format=data_format)


@register_model(reference=f"{HUANG}, Table 2")
def densenet_bc_100_k12(num_classes: int = 10, data_format: str = "NCHW"):
    return DenseNet([16, 16, 16], 12, stem_channels=24, num_classes=num_classes,
                    data_format=data_format)


@register_model(reference=f"{HUANG}, Table 1, with a 3x3 stem and no max-pool")
def densenet121(num_classes: int = 10, data_format: str = "NCHW"):
    return DenseNet([6, 12, 24, 16], 32, stem_channels=64, num_classes=num_classes,
                    data_format=data_format)

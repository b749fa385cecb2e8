"""A small plain CNN: the baseline below which nothing in this package should fall."""
import paddle
import paddle.nn as nn

from .registry import register_model
from .layers import batch_norm, channel_axis, conv3x3, linear, to_layout


class SimpleCNN(nn.Layer):
    """Three stages of two conv-BN-ReLU layers and a 2x2 max-pool, then a linear layer."""

    input_format = "NCHW"  # the batches' layout (resnet.DATA_FORMATS)

    def __init__(self, stage_channels=(32, 64, 128), num_classes: int = 10,
                 data_format: str = "NCHW"):
        super().__init__()
        channel_axis(data_format)  # rejects an unknown layout here, with the choices
        self.data_format = data_format
        layers = []
        in_channels = 3
        for channels in stage_channels:
            for _ in range(2):
                layers += [conv3x3(in_channels, channels, data_format=data_format),
                           batch_norm(channels, data_format=data_format), nn.ReLU()]
                in_channels = channels
            layers.append(nn.MaxPool2D(2, data_format=data_format))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        self.fc = linear(in_channels, num_classes)

    def forward(self, x):
        x = self.features(to_layout(x, self.data_format, self.input_format))
        return self.fc(paddle.flatten(self.pool(x), 1))


@register_model(family="simple", reference="plain CNN baseline of this package")
def simple_cnn(num_classes: int = 10, data_format: str = "NCHW"):
    return SimpleCNN(num_classes=num_classes, data_format=data_format)

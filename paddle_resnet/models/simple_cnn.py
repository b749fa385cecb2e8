"""A small plain CNN: the baseline below which nothing in this package should fall."""
import paddle
import paddle.nn as nn

from .registry import register_model
from .resnet import batch_norm, linear, conv3x3


class SimpleCNN(nn.Layer):
    """Three stages of two conv-BN-ReLU layers and a 2x2 max-pool, then a linear layer."""

    def __init__(self, stage_channels=(32, 64, 128), num_classes: int = 10):
        super().__init__()
        layers = []
        in_channels = 3
        for channels in stage_channels:
            for _ in range(2):
                layers += [conv3x3(in_channels, channels), batch_norm(channels), nn.ReLU()]
                in_channels = channels
            layers.append(nn.MaxPool2D(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(paddle.flatten(self.pool(self.features(x)), 1))


@register_model
def simple_cnn(num_classes: int = 10):
    return SimpleCNN(num_classes=num_classes)

"""The layers every model here is built from, in either layout: NCHW or NHWC
convolutions, BN and the classifier with the initialisations the papers use, and the
layout helpers. A model that takes `data_format` and builds from these computes in both
(docs/models.md, "Adding a model")."""
from typing import List

import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Constant, KaimingNormal

# The layout the layers compute in. Weights have the same names and shapes in both (Paddle
# keeps conv kernels as [out, in, kh, kw]), so checkpoints load into either. Inputs are
# NCHW unless a model's `input_format` says otherwise: an NHWC model fed NCHW batches
# transposes once at its entry; a training loader that writes NHWC batches sets
# `model.input_format = "NHWC"` and the transpose disappears.
DATA_FORMATS = ("NCHW", "NHWC")


def channel_axis(data_format: str) -> int:
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, "
                         f"got {data_format!r}")
    return 1 if data_format == "NCHW" else 3


def batch_shape(batch: int, layout: str, size: int = 32, channels: int = 3) -> List[int]:
    """The shape of a batch of `size` x `size` images in `layout`."""
    return [batch, size, size, channels] if layout == "NHWC" else [batch, channels, size, size]


def to_layout(images: paddle.Tensor, data_format: str, input_format: str = "NCHW"
              ) -> paddle.Tensor:
    """A batch in `input_format`, in the model's layout."""
    if input_format == data_format:
        return images
    return paddle.transpose(images, [0, 2, 3, 1] if data_format == "NHWC" else [0, 3, 1, 2])


def he_normal():
    # He init ("Delving Deep into Rectifiers", 2015), which the ResNet paper uses; Paddle's
    # default for conv weights is Xavier, which shrinks activations in deep nets.
    return ParamAttr(initializer=KaimingNormal(nonlinearity="relu"))


def conv3x3(in_channels: int, out_channels: int, stride: int = 1,
            data_format: str = "NCHW") -> nn.Conv2D:
    return nn.Conv2D(
        in_channels, out_channels, 3, stride=stride, padding=1,
        weight_attr=he_normal(), bias_attr=False, data_format=data_format,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1,
            data_format: str = "NCHW") -> nn.Conv2D:
    return nn.Conv2D(
        in_channels, out_channels, 1, stride=stride,
        weight_attr=he_normal(), bias_attr=False, data_format=data_format,
    )


def batch_norm(channels: int, zero_init: bool = False,
               data_format: str = "NCHW") -> nn.BatchNorm2D:
    # Zero-initialising the last BN of each residual branch makes every block start as
    # the identity (Goyal et al., arXiv:1706.02677, Sec. 5.1).
    gamma = Constant(0.0 if zero_init else 1.0)
    return nn.BatchNorm2D(
        channels, weight_attr=ParamAttr(initializer=gamma),
        bias_attr=ParamAttr(initializer=Constant(0.0)), data_format=data_format,
    )


def linear(in_features: int, out_features: int) -> nn.Linear:
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias: the classifier init of the
    # reference implementations (Torch/PyTorch), stated because Paddle's default differs.
    bound = 1.0 / in_features ** 0.5
    init = ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))
    return nn.Linear(in_features, out_features, weight_attr=init,
                     bias_attr=ParamAttr(initializer=nn.initializer.Uniform(-bound, bound)))

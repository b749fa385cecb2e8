"""A faster input gradient for stride-1 convolutions on Paddle's CPU kernels.

Paddle's CPU `conv2d_grad` computes the input gradient per image as a GEMM followed by
col2im, a scatter-add that costs more than the GEMM. For a stride-1, dilation-1,
ungrouped convolution the same gradient is a forward convolution of the output gradient
with the kernel flipped in space and its in/out channels swapped (the transposed
convolution of a stride-1 convolution is a convolution), padded by `k - 1 - p`. Paddle's
forward kernel (im2col + GEMM) computes it with the same GEMM work but trades col2im over
`in_channels * k * k` rows for im2col over `out_channels * k * k` rows. The weight
gradient stays with Paddle's kernel.

Measured per layer on the project's CPU (docs/performance.md) this wins where a layer
narrows (`in_channels > out_channels`: 2x-4x for DenseNet's growth layers) and on narrow
layers (16 and 32 channels: 1.3x-1.6x); on wide equal-width ones it is mixed and loses
where it matters (64 channels at 32x32: 0.69x; all of ResNet-18 switched: 0.92x of its
step), so only the first two are switched: ResNet-20's step gains 1.06x, DenseNet-40's
1.31x, and ResNet-18's layers all keep Paddle's kernel.

`use_conv_for_input_grad(model)` switches a model's eligible `nn.Conv2D` layers to this
form in place. Parameters, their names and checkpoints are unchanged; only the backward
pass differs, by float32 rounding (the sums run in another order). Other layers, static
graphs (`to_static`, export) and inputs that need no gradient take Paddle's own path.
"""
from typing import Optional, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer

# Output channels up to which equal-width layers gained (16 and 32 did, 64 did not).
NARROW_CHANNELS = 32


class _InputGradAsConv(PyLayer):
    """Identity on `out`; routes `out`'s gradient to `x` through a forward convolution."""

    @staticmethod
    def forward(ctx, out, x, flipped_weight, padding, data_format):
        ctx.save_for_backward(flipped_weight)
        ctx.padding, ctx.data_format = padding, data_format
        # Returned as is, `out` becomes this node's output in place, as with `relu_`: its
        # conv2d node stays this node's input, the route to the weight gradient. (A clone
        # costs 2% of ResNet-20's step; with `ctx.mark_not_inplace` Paddle 3.3.1 lost a
        # gradient.)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (flipped_weight,) = ctx.saved_tensor()
        grad_x = F.conv2d(grad_out, flipped_weight, padding=ctx.padding,
                          data_format=ctx.data_format)
        return grad_out, grad_x, None


def _per_dim_padding(layer: nn.Conv2D) -> Optional[Tuple[int, int]]:
    padding = layer._padding
    if isinstance(padding, int):
        return padding, padding
    if (isinstance(padding, (list, tuple)) and len(padding) == 2
            and all(isinstance(p, int) for p in padding)):
        return tuple(padding)
    return None  # "same"/"valid" strings and asymmetric paddings: not worth the cases


def input_grad_padding(layer: nn.Conv2D) -> Optional[Tuple[int, int]]:
    """The padding of the equivalent forward convolution, or None if `layer` has none."""
    padding = _per_dim_padding(layer)
    if (padding is None or list(layer._stride) != [1, 1] or list(layer._dilation) != [1, 1]
            or layer._groups != 1 or layer._padding_mode != "zeros"):
        return None
    grad_padding = tuple(k - 1 - p for k, p in zip(layer._kernel_size, padding))
    return grad_padding if min(grad_padding) >= 0 else None


def pays_off(layer: nn.Conv2D) -> bool:
    """Where the forward form was faster on the project's CPU (module docstring)."""
    return (layer._in_channels > layer._out_channels
            or layer._out_channels <= NARROW_CHANNELS)


class InputGradConv2D(nn.Conv2D):
    """`nn.Conv2D` whose input gradient is a forward convolution (module docstring)."""

    def forward(self, x):
        if x.stop_gradient or not paddle.in_dynamic_mode():
            return super().forward(x)
        # Only the weight (and bias) gradient comes from Paddle's conv2d_grad here.
        out = F.conv2d(x.detach(), self.weight, self.bias, stride=1, padding=self._padding,
                       data_format=self._data_format)
        flipped = self.weight.detach().flip([2, 3]).transpose([1, 0, 2, 3])
        return _InputGradAsConv.apply(out, x, flipped, list(self._grad_padding),
                                      self._data_format)


def use_conv_for_input_grad(model: nn.Layer) -> int:
    """Switch every `nn.Conv2D` in `model` where the form is valid and pays off to
    `InputGradConv2D`; returns how many.

    The class is swapped on the instance (as torch.nn.utils.parametrize does), so the
    layer keeps its parameters, their names and its place in the model.
    """
    switched = 0
    for layer in model.sublayers(include_self=True):
        if type(layer) is not nn.Conv2D:
            continue
        grad_padding = input_grad_padding(layer)
        if grad_padding is None or not pays_off(layer):
            continue
        layer.__class__ = InputGradConv2D
        layer._grad_padding = grad_padding
        switched += 1
    return switched

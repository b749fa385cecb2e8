"""`nn.Conv2D` through oneDNN on the CPU, for channels-last (NHWC) models in dygraph.

Paddle's dygraph CPU convolution is im2col + GEMM per image, and its backward a GEMM +
col2im per image; it never reaches oneDNN. The custom operators in onednn/conv.cc run
oneDNN's direct convolution for the forward pass and both gradients, on NHWC activations
in Paddle's memory and OIHW weights (reordered to oneDNN's blocked layout inside each
call), so parameters, their names and checkpoints are those of `nn.Conv2D`. Measured per
layer on the project's CPU: 1.4x-2.3x Paddle's forward + backward (docs/performance.md);
results equal Paddle's to float32 rounding (tests/test_onednn_conv.py). With `bf16`
(`speed.conv_bf16`, the default where the CPU has bf16 kernels) training's convolutions run
oneDNN's bf16 kernels on rounded copies of their inputs, within bfloat16's rounding of
float32; evaluation stays float32.

`use_onednn_conv(model, library)` switches every eligible layer of a model in place (the
class is swapped on the instance, as conv_grad.py does). Eligible: NHWC, float32, groups
1, dilation 1, zero padding given as numbers (symmetric or not); any kernel size and
stride. A layer switched this way takes Paddle's own kernel when it is traced for a
static graph (export, Paddle Inference, `to_static`), for other dtypes or on a GPU.
"""
from typing import List, Optional

import paddle
import paddle.nn as nn
from paddle import _C_ops
from paddle.autograd import PyLayer

from ..models.resnet import ShortcutA

OPS = ("onednn_conv2d", "onednn_conv2d_backward_input", "onednn_conv2d_backward_weight",
       "onednn_batch_norm", "onednn_batch_norm_backward", "add_relu", "add_relu_backward",
       "fused_basic_block", "fused_basic_block_projection", "fused_bn_relu_conv",
       "fused_dense_bottleneck")


# The library whose operators this process registered, and what is wrong with it (None:
# nothing). Paddle registers a library's operators once per process: a second call for the
# same library, or another library defining the same names, aborts the process (3.3.1).
_REGISTERED = {}


def register(library: str) -> str:
    """Register the operators of a built library with Paddle (once per process)."""
    if library not in _REGISTERED:
        if _REGISTERED:
            # Another build comes from an ISA cap changed after the first, which oneDNN,
            # having read its cap once, would not follow either.
            raise RuntimeError(f"this process runs the operators of {next(iter(_REGISTERED))}, "
                               "built for another ISA cap (ONEDNN_MAX_CPU_ISA) than now; start "
                               "a new process for the new cap")
        from paddle.utils.cpp_extension import load_op_meta_info_and_register_op
        registered = load_op_meta_info_and_register_op(library)
        missing = [op for op in OPS if op not in registered]
        _REGISTERED[library] = (f"{library} does not define {', '.join(missing)}"
                                if missing else None)
    if _REGISTERED[library]:
        raise RuntimeError(_REGISTERED[library])
    return library


def run_all(op: str, *args):
    """A custom operator's outputs: what the Python wrappers Paddle generates for custom
    operators call in dygraph."""
    return _C_ops._run_custom_op(op, *args)


def _run(op: str, *args):
    return run_all(op, *args)[0]


def on_fast_path(x: paddle.Tensor) -> bool:
    """Whether the oneDNN operators take `x`: dygraph, float32, on the CPU."""
    return (paddle.in_dynamic_mode() and x.dtype == paddle.float32
            and x.place.is_cpu_place())


class _OneDNNConv(PyLayer):
    """The operators read raw memory in NHWC order, so callers pass `x.contiguous()`
    (Paddle's stride kernels may hand a view; `contiguous()` of a dense tensor is the
    tensor itself), and the node's input is the tensor whose need for a gradient it reads."""

    @staticmethod
    def forward(ctx, x, weight, strides, paddings, bf16):
        ctx.save_for_backward(x, weight)
        ctx.config = (strides, paddings, bf16)
        ctx.needs = (not x.stop_gradient, not weight.stop_gradient)
        return _run("onednn_conv2d", x, weight, strides, paddings, bf16)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensor()
        grad_out = grad_out.contiguous()
        needs_x, needs_weight = ctx.needs
        grad_x = (_run("onednn_conv2d_backward_input", grad_out, weight, x, *ctx.config)
                  if needs_x else None)
        grad_weight = (_run("onednn_conv2d_backward_weight", x, grad_out, weight, *ctx.config)
                       if needs_weight else None)
        return grad_x, grad_weight


def paddings_of(layer: nn.Conv2D) -> Optional[List[int]]:
    """[top, bottom, left, right], or None where the padding is not plain numbers."""
    padding = layer._padding
    if padding == "valid":
        return [0, 0, 0, 0]
    if isinstance(padding, int):
        return [padding] * 4
    if isinstance(padding, (list, tuple)) and all(isinstance(p, int) for p in padding):
        if len(padding) == 2:
            return [padding[0], padding[0], padding[1], padding[1]]
        if len(padding) == 4:
            return list(padding)
    return None  # "same", or per-dimension pairs: Paddle's kernel


def eligible(layer: nn.Layer) -> bool:
    return (isinstance(layer, nn.Conv2D) and type(layer) in (nn.Conv2D, OneDNNConv2D)
            and layer._data_format == "NHWC" and layer._groups == 1
            and list(layer._dilation) == [1, 1] and layer._padding_mode == "zeros"
            and paddings_of(layer) is not None)


class OneDNNConv2D(nn.Conv2D):
    """`nn.Conv2D` (NHWC) whose dygraph CPU passes run on oneDNN (module docstring)."""

    def forward(self, x):
        if not on_fast_path(x):
            return super().forward(x)
        # bf16 rounds training's convolutions only: evaluation measures in float32.
        out = _OneDNNConv.apply(x.contiguous(), self.weight, list(self._stride),
                                self._onednn_paddings, self._onednn_bf16 and self.training)
        return out if self.bias is None else out + self.bias


class OneDNNShortcutA(ShortcutA):
    """The option-A shortcut (subsample, zero-pad the new channels) as a 1x1 convolution
    with a fixed 0/1 kernel: each output channel is one input channel times 1, or 0, so
    the values and their gradients are exactly those of the slice-and-concatenate form.
    Paddle's strided-slice gradient, concat and zeros cost 9% of ResNet-20's step here;
    the convolution costs a tenth of that. The kernel is no parameter or buffer, so the
    state_dict is unchanged."""

    def forward(self, x):
        if not on_fast_path(x) or self.axis != 3:
            return super().forward(x)
        return _OneDNNConv.apply(x.contiguous(), self._selection, [self.stride, self.stride],
                                 [0, 0, 0, 0], False)


def _selection(in_channels: int, out_channels: int, offset: int) -> paddle.Tensor:
    kernel = paddle.zeros([out_channels, in_channels, 1, 1])
    for c in range(in_channels):
        kernel[offset + c, c, 0, 0] = 1.0
    kernel.stop_gradient = True
    return kernel


def use_onednn_conv(model: nn.Layer, library: str, bf16: bool = False) -> int:
    """Switch every eligible `nn.Conv2D` of `model` to `OneDNNConv2D`, and NHWC option-A
    shortcuts to `OneDNNShortcutA`; returns how many layers. `bf16` rounds the training
    convolutions' inputs (activations, output gradients, weights) to bfloat16 for oneDNN's
    bf16 kernels; outputs, gradients and the weights Paddle keeps stay float32."""
    register(library)
    switched = 0
    for layer in model.sublayers(include_self=True):
        if type(layer) is ShortcutA and layer.axis == 3:
            in_channels = layer._in_channels
            layer.__class__ = OneDNNShortcutA
            layer._selection = _selection(in_channels, in_channels + layer.pad_before
                                          + layer.pad_after, layer.pad_before)
            switched += 1
        if not eligible(layer):
            continue
        layer.__class__ = OneDNNConv2D
        layer._onednn_paddings = paddings_of(layer)
        layer._onednn_bf16 = bool(bf16)
        switched += 1
    return switched

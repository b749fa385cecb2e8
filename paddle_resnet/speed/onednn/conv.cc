// 2-D convolution through oneDNN for Paddle's dygraph: forward, input gradient and
// weight gradient as three custom operators (paddle_resnet/speed/onednn_conv.py
// composes them into one autograd node). The primitives, their layouts and the bf16
// rounding are conv_primitives.h's.
//
// Callers are Paddle's single training thread; oneDNN threads inside each primitive with
// the OpenMP runtime Paddle loaded.
#include <vector>

#include "conv_primitives.h"

using namespace paddle_resnet;        // NOLINT: the shared helpers of common.h
using namespace paddle_resnet::conv;  // NOLINT: the primitives of conv_primitives.h

std::vector<paddle::Tensor> ConvForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                        const std::vector<int>& strides,
                                        const std::vector<int>& paddings, bool bf16) {
  check_input(x, "onednn_conv2d", "input");
  check_input(weight, "onednn_conv2d", "weight");
  const Geometry g = geometry(x.shape(), weight.shape(), strides, paddings, bf16);
  Forward& f = conv::forward(g);
  auto out = empty({g.dst[0], g.dst[2], g.dst[3], g.dst[1]});
  f.execute(g, f.src.bind(g.src, x.data<float>()), weight.data<float>(), data_of(out));
  return {out};
}

// `x` gives the input's shape only.
std::vector<paddle::Tensor> ConvInputGrad(const paddle::Tensor& grad_out,
                                          const paddle::Tensor& weight,
                                          const paddle::Tensor& x,
                                          const std::vector<int>& strides,
                                          const std::vector<int>& paddings, bool bf16) {
  check_input(grad_out, "onednn_conv2d", "output gradient");
  check_input(weight, "onednn_conv2d", "weight");
  const Geometry g = geometry(x.shape(), weight.shape(), strides, paddings, bf16);
  BackwardData& b = conv::backward_data(g);
  auto grad_x = empty(x.shape());
  b.execute(g, b.diff_dst.bind(g.dst, grad_out.data<float>()), weight.data<float>(),
            data_of(grad_x));
  return {grad_x};
}

// `weight` gives the weight's shape only.
std::vector<paddle::Tensor> ConvWeightGrad(const paddle::Tensor& x,
                                           const paddle::Tensor& grad_out,
                                           const paddle::Tensor& weight,
                                           const std::vector<int>& strides,
                                           const std::vector<int>& paddings, bool bf16) {
  check_input(x, "onednn_conv2d", "input");
  check_input(grad_out, "onednn_conv2d", "output gradient");
  const Geometry g = geometry(x.shape(), weight.shape(), strides, paddings, bf16);
  BackwardWeights& b = conv::backward_weights(g);
  auto grad_w = empty(weight.shape());
  b.execute(g, b.src.bind(g.src, x.data<float>()), b.diff_dst.bind(g.dst, grad_out.data<float>()),
            data_of(grad_w));
  return {grad_w};
}

PD_BUILD_OP(onednn_conv2d)
    .Inputs({"X", "Weight"})
    .Outputs({"Out"})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(ConvForward));

PD_BUILD_OP(onednn_conv2d_backward_input)
    .Inputs({"GradOut", "Weight", "X"})
    .Outputs({"GradX"})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(ConvInputGrad));

PD_BUILD_OP(onednn_conv2d_backward_weight)
    .Inputs({"X", "GradOut", "Weight"})
    .Outputs({"GradWeight"})
    .Attrs({"strides: std::vector<int>", "paddings: std::vector<int>", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(ConvWeightGrad));

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
  memory src = f.src.bind(g.src, x.data<float>());
  memory dst(activation(g.dst), cpu_engine(), data_of(out));
  memory weights = f.weights.bind(g.weights, weight.data<float>());
  run(f.primitive, f.scratchpad,
      {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
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
  memory diff_dst = b.diff_dst.bind(g.dst, grad_out.data<float>());
  memory diff_src(activation(g.src), cpu_engine(), data_of(grad_x));
  memory weights = b.weights.bind(g.weights, weight.data<float>());
  run(b.primitive, b.scratchpad,
      {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diff_src}});
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
  memory src = b.src.bind(g.src, x.data<float>());
  memory diff_dst = b.diff_dst.bind(g.dst, grad_out.data<float>());
  run(b.primitive, b.scratchpad,
      {{DNNL_ARG_SRC, src},
       {DNNL_ARG_DIFF_DST, diff_dst},
       {DNNL_ARG_DIFF_WEIGHTS, b.diff_weights.target(g.weights, data_of(grad_w))}});
  b.diff_weights.finish(g.weights, data_of(grad_w));
  cpu_stream().wait();
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

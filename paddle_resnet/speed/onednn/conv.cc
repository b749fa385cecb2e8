// 2-D convolution through oneDNN for Paddle's dygraph: forward, input gradient and
// weight gradient as three custom operators (paddle_resnet/speed/onednn_conv.py
// composes them into one autograd node).
//
// Layouts: activations and their gradients are NHWC float32 in Paddle's memory (no
// reorder: oneDNN's NHWC kernels read and write them in place); weights and their
// gradient stay OIHW, Paddle's layout and the checkpoints', and are reordered to and from
// the blocked layout oneDNN picks (`format_tag::any`). A plain NCHW descriptor sends
// oneDNN to its slow GEMM path, hence NHWC.
//
// bf16: the primitives read bfloat16 activations, output gradients and weights (copies
// rounded from Paddle's float32 into buffers kept with each primitive) and write float32
// outputs and gradients, accumulating in float32. oneDNN's fpmath mode, which would
// round inside f32 primitives, leaves these convolutions in f32 on CPUs without AMX.
//
// Primitives are built once per shape and kept (common.h). Callers are Paddle's single
// training thread; oneDNN threads inside each primitive with the OpenMP runtime Paddle
// loaded.
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

using namespace paddle_resnet;  // NOLINT: the shared helpers of common.h

namespace {

using dnnl::memory;
using Dims = memory::dims;
using Tag = memory::format_tag;
constexpr auto kF32 = memory::data_type::f32;
constexpr auto kBF16 = memory::data_type::bf16;

// oneDNN's dims are always logical N, C, H, W (weights O, I, KH, KW); the tag says how
// they lie in memory.
struct Geometry {
  Dims src, weights, dst, strides, pad_l, pad_r;
  bool bf16;

  std::string key(const char* kind) const {
    std::string k(kind);
    for (const Dims* d : {&src, &weights, &dst, &strides, &pad_l, &pad_r}) {
      for (auto v : *d) k += "," + std::to_string(v);
      k += ";";
    }
    return k + (bf16 ? "bf16" : "f32");
  }
};

// x: N, H, W, C (NHWC); weight: O, I, KH, KW; paddings: top, bottom, left, right.
Geometry geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                  const std::vector<int>& strides, const std::vector<int>& paddings,
                  bool bf16) {
  PD_CHECK(x.size() == 4 && w.size() == 4, "onednn_conv2d: 4-D input and weight expected");
  PD_CHECK(strides.size() == 2 && paddings.size() == 4,
           "onednn_conv2d: 2 strides and 4 paddings expected");
  PD_CHECK(x[3] == w[1], "onednn_conv2d: input has ", x[3], " channels, weight expects ",
           w[1]);
  const int64_t oh = (x[1] + paddings[0] + paddings[1] - w[2]) / strides[0] + 1;
  const int64_t ow = (x[2] + paddings[2] + paddings[3] - w[3]) / strides[1] + 1;
  PD_CHECK(oh > 0 && ow > 0, "onednn_conv2d: kernel larger than the padded input");
  // oneDNN wants the right/bottom padding that the output size implies.
  const int64_t pad_b = (oh - 1) * strides[0] + w[2] - x[1] - paddings[0];
  const int64_t pad_r = (ow - 1) * strides[1] + w[3] - x[2] - paddings[2];
  return {{x[0], x[3], x[1], x[2]},
          {w[0], w[1], w[2], w[3]},
          {x[0], w[0], oh, ow},
          {strides[0], strides[1]},
          {paddings[0], paddings[2]},
          {pad_b, pad_r},
          bf16};
}

// The type the primitives read their inputs in (module comment).
memory::data_type input_type(const Geometry& g) { return g.bf16 ? kBF16 : kF32; }

memory::desc activation(const Dims& dims, memory::data_type type = kF32) {
  return memory::desc(dims, type, Tag::nhwc);
}
memory::desc oihw(const Dims& dims) { return memory::desc(dims, kF32, Tag::oihw); }
memory::desc any_weights(const Dims& dims, memory::data_type type = kF32) {
  return memory::desc(dims, type, Tag::any);
}

dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      activation(g.src, input_type(g)), any_weights(g.weights, input_type(g)),
      activation(g.dst), g.strides, g.pad_l, g.pad_r);
}

// A float32 NHWC activation (or its gradient) as a primitive reads it: Paddle's memory
// itself, or for bf16 a rounded copy in a buffer of its own.
struct ActivationIn {
  bool round = false;
  memory rounded;
  dnnl::reorder to_rounded;

  ActivationIn() = default;
  ActivationIn(const Dims& dims, memory::data_type type) {
    round = type != kF32;
    if (round) {
      rounded = memory(activation(dims, type), cpu_engine());
      to_rounded = dnnl::reorder(dnnl::reorder::primitive_desc(
          cpu_engine(), activation(dims), cpu_engine(), activation(dims, type)));
    }
  }

  memory bind(const Dims& dims, const float* data) {
    memory plain(activation(dims), cpu_engine(), const_cast<float*>(data));
    if (!round) return plain;
    to_rounded.execute(cpu_stream(), plain, rounded);
    return rounded;
  }
};

// Weights in Paddle's OIHW layout, converted into the layout (and type) a primitive chose.
struct WeightsIn {
  bool reorder = false;
  memory blocked;
  dnnl::reorder to_blocked;

  WeightsIn() = default;
  WeightsIn(const memory::desc& chosen, const Dims& dims) {
    reorder = chosen != oihw(dims);
    if (reorder) {
      blocked = memory(chosen, cpu_engine());
      to_blocked = dnnl::reorder(dnnl::reorder::primitive_desc(
          cpu_engine(), oihw(dims), cpu_engine(), chosen));
    }
  }

  memory bind(const Dims& dims, const float* data) {
    memory plain(oihw(dims), cpu_engine(), const_cast<float*>(data));
    if (!reorder) return plain;
    to_blocked.execute(cpu_stream(), plain, blocked);
    return blocked;
  }
};

struct Forward {
  dnnl::convolution_forward primitive;
  WeightsIn weights;
  ActivationIn src;
};

struct BackwardData {
  dnnl::convolution_backward_data primitive;
  WeightsIn weights;
  ActivationIn diff_dst;
};

struct BackwardWeights {
  dnnl::convolution_backward_weights primitive;
  ActivationIn src, diff_dst;
  bool reorder = false;
  memory blocked;
  dnnl::reorder to_plain;
};

Forward* make_forward(const Geometry& g) {
  auto pd = forward_desc(g);
  return new Forward{dnnl::convolution_forward(pd), WeightsIn(pd.weights_desc(), g.weights),
                     ActivationIn(g.src, input_type(g))};
}

BackwardData* make_backward_data(const Geometry& g) {
  auto pd = dnnl::convolution_backward_data::primitive_desc(
      cpu_engine(), dnnl::algorithm::convolution_direct, activation(g.src),
      any_weights(g.weights, input_type(g)), activation(g.dst, input_type(g)), g.strides,
      g.pad_l, g.pad_r, forward_desc(g));
  return new BackwardData{dnnl::convolution_backward_data(pd),
                          WeightsIn(pd.weights_desc(), g.weights),
                          ActivationIn(g.dst, input_type(g))};
}

BackwardWeights* make_backward_weights(const Geometry& g) {
  auto pd = dnnl::convolution_backward_weights::primitive_desc(
      cpu_engine(), dnnl::algorithm::convolution_direct, activation(g.src, input_type(g)),
      any_weights(g.weights), activation(g.dst, input_type(g)), g.strides, g.pad_l, g.pad_r,
      forward_desc(g));
  auto* made = new BackwardWeights{dnnl::convolution_backward_weights(pd),
                                   ActivationIn(g.src, input_type(g)),
                                   ActivationIn(g.dst, input_type(g))};
  made->reorder = pd.diff_weights_desc() != oihw(g.weights);
  if (made->reorder) {
    made->blocked = memory(pd.diff_weights_desc(), cpu_engine());
    made->to_plain = dnnl::reorder(dnnl::reorder::primitive_desc(
        cpu_engine(), pd.diff_weights_desc(), cpu_engine(), oihw(g.weights)));
  }
  return made;
}

std::unordered_map<std::string, std::unique_ptr<Forward>> forward_cache;
std::unordered_map<std::string, std::unique_ptr<BackwardData>> backward_data_cache;
std::unordered_map<std::string, std::unique_ptr<BackwardWeights>> backward_weights_cache;

}  // namespace

std::vector<paddle::Tensor> ConvForward(const paddle::Tensor& x, const paddle::Tensor& weight,
                                        const std::vector<int>& strides,
                                        const std::vector<int>& paddings, bool bf16) {
  check_input(x, "onednn_conv2d", "input");
  check_input(weight, "onednn_conv2d", "weight");
  const Geometry g = geometry(x.shape(), weight.shape(), strides, paddings, bf16);
  Forward& f = cached(&forward_cache, g.key("fwd"), make_forward, g);
  auto out = empty({g.dst[0], g.dst[2], g.dst[3], g.dst[1]});
  memory src = f.src.bind(g.src, x.data<float>());
  memory dst(activation(g.dst), cpu_engine(), data_of(out));
  memory weights = f.weights.bind(g.weights, weight.data<float>());
  f.primitive.execute(cpu_stream(), {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_WEIGHTS, weights},
                                     {DNNL_ARG_DST, dst}});
  cpu_stream().wait();
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
  BackwardData& b = cached(&backward_data_cache, g.key("bwd_data"), make_backward_data, g);
  auto grad_x = empty(x.shape());
  memory diff_dst = b.diff_dst.bind(g.dst, grad_out.data<float>());
  memory diff_src(activation(g.src), cpu_engine(), data_of(grad_x));
  memory weights = b.weights.bind(g.weights, weight.data<float>());
  b.primitive.execute(cpu_stream(), {{DNNL_ARG_DIFF_DST, diff_dst},
                                     {DNNL_ARG_WEIGHTS, weights},
                                     {DNNL_ARG_DIFF_SRC, diff_src}});
  cpu_stream().wait();
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
  BackwardWeights& b =
      cached(&backward_weights_cache, g.key("bwd_weights"), make_backward_weights, g);
  auto grad_w = empty(weight.shape());
  memory src = b.src.bind(g.src, x.data<float>());
  memory diff_dst = b.diff_dst.bind(g.dst, grad_out.data<float>());
  memory plain(oihw(g.weights), cpu_engine(), data_of(grad_w));
  b.primitive.execute(cpu_stream(), {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_DIFF_DST, diff_dst},
                                     {DNNL_ARG_DIFF_WEIGHTS, b.reorder ? b.blocked : plain}});
  if (b.reorder) b.to_plain.execute(cpu_stream(), b.blocked, plain);
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

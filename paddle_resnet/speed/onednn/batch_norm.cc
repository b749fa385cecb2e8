// Training-mode batch normalization through oneDNN, NHWC float32, optionally fused with
// the ReLU that follows it; and a residual block's tail `relu(a + b)` as one pass: forward
// and backward as custom operators (paddle_resnet/speed/onednn_norm.py composes them into
// autograd nodes and updates the running statistics as Paddle's BatchNorm does).
// (oneDNN's own norm+add+ReLU fusion refuses NHWC: "sum+relu post-ops configuration is
// not supported", oneDNN 3.6.2.)
//
// Statistics are the batch's, the variance biased (divided by N*H*W), as in Paddle's
// training kernel. The fused ReLU keeps a bit mask in oneDNN's workspace, returned to
// Paddle as a uint8 tensor and handed back to the backward pass.
#include "common.h"

using namespace paddle_resnet;  // NOLINT: the shared helpers of common.h

namespace {

using dnnl::memory;
using Flags = dnnl::normalization_flags;

enum class Fusion { kNone, kRelu };

struct NormShape {
  memory::dims dims;  // N, C, H, W
  float epsilon;
  Fusion fusion;

  std::string key(const char* kind) const {
    std::string k(kind);
    for (auto v : dims) k += "," + std::to_string(v);
    return k + ";" + std::to_string(epsilon) + ";" + std::to_string(static_cast<int>(fusion));
  }
};

Flags flags_of(Fusion fusion) {
  Flags flags = Flags::use_scale | Flags::use_shift;
  if (fusion == Fusion::kRelu) flags = flags | Flags::fuse_norm_relu;
  return flags;
}

memory::desc nhwc(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, memory::format_tag::nhwc);
}

memory::desc vector_desc(int64_t channels) {
  return memory::desc({channels}, memory::data_type::f32, memory::format_tag::a);
}

dnnl::batch_normalization_forward::primitive_desc forward_desc(const NormShape& s) {
  return dnnl::batch_normalization_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_training, nhwc(s.dims), nhwc(s.dims), s.epsilon,
      flags_of(s.fusion));
}

struct NormForward {
  dnnl::batch_normalization_forward primitive;
  memory::desc workspace;
};

struct NormBackward {
  dnnl::batch_normalization_backward primitive;
  memory::desc workspace;
};

NormForward* make_forward(const NormShape& s) {
  auto pd = forward_desc(s);
  return new NormForward{dnnl::batch_normalization_forward(pd), pd.workspace_desc()};
}

NormBackward* make_backward(const NormShape& s) {
  auto pd = dnnl::batch_normalization_backward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::backward, nhwc(s.dims), nhwc(s.dims), nhwc(s.dims),
      s.epsilon, flags_of(s.fusion), forward_desc(s));
  return new NormBackward{dnnl::batch_normalization_backward(pd), pd.workspace_desc()};
}

std::unordered_map<std::string, std::unique_ptr<NormForward>> forward_cache;
std::unordered_map<std::string, std::unique_ptr<NormBackward>> backward_cache;

NormShape shape_of(const paddle::Tensor& x, float epsilon, Fusion fusion) {
  const auto& s = x.shape();
  PD_CHECK(s.size() == 4, "onednn_batch_norm: a 4-D NHWC input expected");
  return {{s[0], s[3], s[1], s[2]}, epsilon, fusion};
}

// The workspace as a Paddle tensor (at least one byte, so that it always exists).
paddle::Tensor workspace_tensor(const memory::desc& desc) {
  const int64_t bytes = static_cast<int64_t>(desc.get_size());
  return paddle::empty({bytes > 0 ? bytes : 1}, paddle::DataType::UINT8, paddle::CPUPlace());
}

memory workspace_memory(const memory::desc& desc, const paddle::Tensor& t) {
  return memory(desc, cpu_engine(), const_cast<uint8_t*>(t.data<uint8_t>()));
}

std::vector<paddle::Tensor> forward(const paddle::Tensor& x, const paddle::Tensor& scale, const paddle::Tensor& shift,
                                    float epsilon, Fusion fusion) {
  check_input(x, "onednn_batch_norm", "input");
  check_input(scale, "onednn_batch_norm", "scale");
  check_input(shift, "onednn_batch_norm", "shift");
  const NormShape s = shape_of(x, epsilon, fusion);
  NormForward& f = cached(&forward_cache, s.key("fwd"), make_forward, s);
  auto y = empty(x.shape());
  auto mean = empty({s.dims[1]});
  auto variance = empty({s.dims[1]});
  auto workspace = workspace_tensor(f.workspace);
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(nhwc(s.dims), cpu_engine(), data_of(x))},
      {DNNL_ARG_DST, memory(nhwc(s.dims), cpu_engine(), data_of(y))},
      {DNNL_ARG_SCALE, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(scale))},
      {DNNL_ARG_SHIFT, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(shift))},
      {DNNL_ARG_MEAN, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(mean))},
      {DNNL_ARG_VARIANCE, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(variance))}};
  if (fusion != Fusion::kNone) {
    args.emplace(DNNL_ARG_WORKSPACE, workspace_memory(f.workspace, workspace));
  }
  f.primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
  return {y, mean, variance, workspace};
}

std::vector<paddle::Tensor> backward(const paddle::Tensor& grad_y, const paddle::Tensor& x,
                                     const paddle::Tensor& scale, const paddle::Tensor& mean,
                                     const paddle::Tensor& variance,
                                     const paddle::Tensor& workspace, float epsilon,
                                     Fusion fusion) {
  check_input(grad_y, "onednn_batch_norm", "output gradient");
  const NormShape s = shape_of(x, epsilon, fusion);
  NormBackward& b = cached(&backward_cache, s.key("bwd"), make_backward, s);
  auto grad_x = empty(x.shape());
  auto grad_scale = empty({s.dims[1]});
  auto grad_shift = empty({s.dims[1]});
  std::vector<paddle::Tensor> out = {grad_x};
  std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(nhwc(s.dims), cpu_engine(), data_of(x))},
      {DNNL_ARG_DIFF_DST, memory(nhwc(s.dims), cpu_engine(), data_of(grad_y))},
      {DNNL_ARG_DIFF_SRC, memory(nhwc(s.dims), cpu_engine(), data_of(grad_x))},
      {DNNL_ARG_SCALE, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(scale))},
      {DNNL_ARG_MEAN, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(mean))},
      {DNNL_ARG_VARIANCE, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(variance))},
      {DNNL_ARG_DIFF_SCALE, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(grad_scale))},
      {DNNL_ARG_DIFF_SHIFT, memory(vector_desc(s.dims[1]), cpu_engine(), data_of(grad_shift))}};
  if (fusion != Fusion::kNone) {
    args.emplace(DNNL_ARG_WORKSPACE, workspace_memory(b.workspace, workspace));
  }
  b.primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
  out.push_back(grad_scale);
  out.push_back(grad_shift);
  return out;
}

}  // namespace

std::vector<paddle::Tensor> BatchNorm(const paddle::Tensor& x, const paddle::Tensor& scale,
                                      const paddle::Tensor& shift, float epsilon, bool relu) {
  return forward(x, scale, shift, epsilon, relu ? Fusion::kRelu : Fusion::kNone);
}

std::vector<paddle::Tensor> BatchNormBackward(const paddle::Tensor& grad_y,
                                              const paddle::Tensor& x,
                                              const paddle::Tensor& scale,
                                              const paddle::Tensor& mean,
                                              const paddle::Tensor& variance,
                                              const paddle::Tensor& workspace, float epsilon,
                                              bool relu) {
  return backward(grad_y, x, scale, mean, variance, workspace, epsilon,
                  relu ? Fusion::kRelu : Fusion::kNone);
}

// relu(a + b), and its gradient for both inputs from the output (y > 0 where the sum
// was): one pass each way instead of Paddle's add, ReLU and their two backward kernels.
// The two gradients are equal but written apart, as Paddle may accumulate into either.
std::vector<paddle::Tensor> AddRelu(const paddle::Tensor& a, const paddle::Tensor& b) {
  check_input(a, "add_relu", "a");
  check_input(b, "add_relu", "b");
  PD_CHECK(a.shape() == b.shape(), "add_relu: the inputs' shapes differ");
  auto y = empty(a.shape());
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = data_of(y);
  const int64_t n = a.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float sum = pa[i] + pb[i];
    py[i] = sum > 0.0f ? sum : 0.0f;
  }
  return {y};
}

std::vector<paddle::Tensor> AddReluBackward(const paddle::Tensor& y,
                                            const paddle::Tensor& grad_y) {
  check_input(grad_y, "add_relu", "output gradient");
  auto grad_a = empty(y.shape());
  auto grad_b = empty(y.shape());
  const float* py = y.data<float>();
  const float* pg = grad_y.data<float>();
  float* pa = data_of(grad_a);
  float* pb = data_of(grad_b);
  const int64_t n = y.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float g = py[i] > 0.0f ? pg[i] : 0.0f;
    pa[i] = g;
    pb[i] = g;
  }
  return {grad_a, grad_b};
}

PD_BUILD_OP(onednn_batch_norm)
    .Inputs({"X", "Scale", "Shift"})
    .Outputs({"Y", "Mean", "Variance", "Workspace"})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(BatchNorm));

PD_BUILD_OP(add_relu)
    .Inputs({"A", "B"})
    .Outputs({"Y"})
    .SetKernelFn(PD_KERNEL(AddRelu));

PD_BUILD_OP(add_relu_backward)
    .Inputs({"Y", "GradY"})
    .Outputs({"GradA", "GradB"})
    .SetKernelFn(PD_KERNEL(AddReluBackward));

PD_BUILD_OP(onednn_batch_norm_backward)
    .Inputs({"GradY", "X", "Scale", "Mean", "Variance", "Workspace"})
    .Outputs({"GradX", "GradScale", "GradShift"})
    .Attrs({"epsilon: float", "relu: bool"})
    .SetKernelFn(PD_KERNEL(BatchNormBackward));


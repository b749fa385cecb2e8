// Pre-activation BN-ReLU-convolution as one custom operator, forward and backward:
//     y = conv(relu(bn(x)))
//     with `concat`: y = [x, conv(relu(bn(x)))]; with `pool`: y = avgpool2x2(conv(relu(bn(x))))
// with batch statistics (training mode), a 1x1 or 3x3 convolution, stride 1, padding that
// keeps the size, no bias: every convolution of a DenseNet (its dense layers, their
// bottlenecks and its transitions); with `concat` a whole dense layer without a bottleneck
// (DenseNet-40's), with `pool` a whole transition. `fused_dense_bottleneck` is a DenseNet-BC
// layer, two such stages and the concatenation. paddle_resnet/speed/fused_norm_conv.py
// calls them.
//
// Why: DenseNet's layers have no residual add, so the fused basic block does not apply,
// and in the per-layer path a layer's BN, ReLU and their gradients were ~a quarter of
// DenseNet-40's step, in float32, plus a rounding pass for the convolution's bf16 input
// (docs/performance.md). Here BN and ReLU are norm_passes.cc's passes: a statistics pass
// and one normalize+ReLU pass forward that writes the convolution's input (bf16 where the
// plan convolves in bf16, kept for the weight gradient), and a reduction pass and one
// gradient pass backward, the ReLU's mask recomputed from x. The results are the per-layer
// path's (Paddle's BN and ReLU, then the convolution on its input rounded to bf16) to
// float32 rounding: the same values meet the same oneDNN primitives (conv_primitives.h).
//
// The concatenation: Paddle's concat copies x and the new maps into a tensor of their own,
// and its backward splits the output gradient into copies, one of which autograd then
// adds to x's gradient from the BN: ~16% of DenseNet-40's step after the fusion above
// (docs/performance.md). With `concat` the operator writes x's rows and the new maps into
// y itself, and its BN gradient pass adds y's gradient for x's channels as it writes x's
// gradient, so neither the copies nor the add remain. x's gradient is float32.
//
// The transition: a 1x1 convolution and a 2x2 average pooling are both linear and act on
// different axes (channels; pixels), so pooling first gives the same maps as Huang et al.'s
// order (the per-layer path's) up to float32 rounding, with a quarter of the convolution's
// work, and no pooling of its output or of its gradient remains: the normalize pass writes
// the pooled relu(bn(x)) directly, and the backward spreads the pooled gradient over each
// window before the BN's passes. Its convolution stays float32 (convolves_in_bf16).
#include <cstdint>
#include <cstring>
#include <vector>

#include "conv_primitives.h"
#include "norm_passes.h"
#include "vector_rows.h"

using namespace paddle_resnet;        // NOLINT: the shared helpers of common.h
using namespace paddle_resnet::conv;  // NOLINT: the primitives of conv_primitives.h
using namespace paddle_resnet::norm;  // NOLINT: the BN passes of norm_passes.h

namespace {

constexpr const char* kOp = "fused_bn_relu_conv";

// Rows of the saved statistics tensor (kStats x channels of x).
enum StatRow { kMean, kInvStd, kScale, kShift, kStats };

// The convolution of NHWC input `xs` (conv_input_shape's, 4-D) by w (OIHW): stride 1, the
// size kept.
Geometry conv_geometry(const std::vector<int64_t>& xs, const paddle::Tensor& w, bool bf16) {
  const auto& ws = w.shape();
  PD_CHECK(ws.size() == 4 && ws[2] == ws[3] && ws[2] % 2 == 1, kOp,
           ": a square kernel of odd size expected");
  const int pad = static_cast<int>(ws[2] / 2);
  return geometry(xs, ws, {1, 1}, {pad, pad, pad, pad}, bf16);
}

std::vector<int64_t> conv_output_shape(const Geometry& g) {
  return {g.dst[0], g.dst[2], g.dst[3], g.dst[1]};
}

// A transition's convolution runs in float32 on its pooled input: rounded to bf16 it would
// round each window's average once where the per-layer path rounds its four pixels and
// averages their rounding errors (measured 1.14x the per-layer path's mean error), and in
// float32 on a quarter of the pixels it still costs less than the unpooled bf16 one.
bool convolves_in_bf16(bool asked, bool pool) { return asked && !pool; }

// The convolution's input: x's shape, or with `pool` its 2x2 average pooling's (floor, as
// Paddle's AvgPool2D(2) without padding).
std::vector<int64_t> conv_input_shape(const paddle::Tensor& x, bool pool,
                                      const paddle::Tensor& w) {
  const auto& xs = x.shape();
  PD_CHECK(xs.size() == 4, kOp, ": a 4-D NHWC input expected");
  if (!pool) return xs;
  PD_CHECK(w.shape().size() == 4 && w.shape()[2] == 1 && w.shape()[3] == 1, kOp,
           ": pooling before the convolution needs a 1x1 kernel");
  PD_CHECK(xs[1] >= 2 && xs[2] >= 2, kOp, ": a 2x2 pooling needs maps of at least 2x2");
  return {xs[0], xs[1] / 2, xs[2] / 2, xs[3]};
}

// g_a = the gradient of each pixel of a 2x2 average pooling's input from its output's g_p:
// a quarter of its window's, nothing for a last odd row or column the pooling dropped.
VECTOR_CLONES void spread_pooled_grad(const float* g_p, const std::vector<int64_t>& xs,
                                      float* g_a) {
  const int64_t n_count = xs[0], h_in = xs[1], w_in = xs[2], channels = xs[3];
  const int64_t h_out = h_in / 2, w_out = w_in / 2;
  std::memset(g_a, 0, sizeof(float) * n_count * h_in * w_in * channels);
  for (int64_t n = 0; n < n_count; ++n) {
    for (int64_t h = 0; h < 2 * h_out; ++h) {
      for (int64_t w = 0; w < 2 * w_out; ++w) {
        const float* p = g_p + ((n * h_out + h / 2) * w_out + w / 2) * channels;
        float* a = g_a + ((n * h_in + h) * w_in + w) * channels;
        for (int64_t c = 0; c < channels; ++c) a[c] = p[c] * 0.25f;
      }
    }
  }
}

// y's rows = [x's row, t's row]: the concatenation along channels of NHWC x and t.
void concat_rows(const float* x, int64_t x_channels, const float* t, int64_t t_channels,
                 int64_t rows, float* y) {
  const int64_t width = x_channels + t_channels;
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(y + r * width, x + r * x_channels, x_channels * sizeof(float));
    std::memcpy(y + r * width + x_channels, t + r * t_channels, t_channels * sizeof(float));
  }
}

// The last `channels` of each of g's rows (`width` floats apart), contiguous, into float32
// or (out_bf16 not null) bfloat16 rounded as round_to_bf16 rounds.
void last_channels(const float* g, int64_t width, int64_t channels, int64_t rows, float* out,
                   uint16_t* out_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = g + r * width + (width - channels);
    if (out_bf16 != nullptr) {
      for (int64_t c = 0; c < channels; ++c) out_bf16[r * channels + c] = to_bf16(row[c]);
    } else {
      std::memcpy(out + r * channels, row, channels * sizeof(float));
    }
  }
}

// One BN-ReLU-convolution's forward on x: its statistics (running buffers updated), the
// convolution's input a = relu(bn(x)) (with `pool` 2x2-pooled; bf16 where it convolves in
// bf16) and its output t.
struct Stage {
  paddle::Tensor a, stats, t;
};

Stage stage_forward(const paddle::Tensor& x, const Norm& n, const paddle::Tensor& w,
                    float epsilon, float momentum, bool pool, bool bf16) {
  check_input(w, kOp, "a convolution's weight");
  check_norm(n, kOp);
  const std::vector<int64_t> a_shape = conv_input_shape(x, pool, w);
  const Geometry g = conv_geometry(a_shape, w, bf16);
  const Rows shape = rows_of(x.shape());
  const int64_t channels = shape.channels;
  std::vector<float> partial(2 * channels);

  Stage out{empty_of(a_shape, bf16), empty({kStats, channels}), empty(conv_output_shape(g))};
  float* st = data_of(out.stats);
  auto row = [&](StatRow r) { return st + r * channels; };
  normalize_stats(x.data<float>(), shape, n, epsilon, momentum, row(kMean), row(kInvStd),
                  row(kScale), row(kShift), partial.data());
  float* a_f32 = bf16 ? nullptr : data_of(out.a);
  uint16_t* a_bf16 = bf16 ? bf16_data(out.a) : nullptr;
  if (pool) {
    scale_shift_relu_pool(x.data<float>(), x.shape(), row(kScale), row(kShift), a_f32, a_bf16);
  } else {
    scale_shift_relu(x.data<float>(), shape.rows, channels, row(kScale), row(kShift), a_f32,
                     a_bf16);
  }
  run_forward(g, conv_input(g.src, out.a, bf16), w, data_of(out.t));
  return out;
}

// t's gradient as the convolution reads it (rounded to bf16 once, for both of its
// gradients, where it convolves in bf16): the last `t_channels` of grad_y's channels.
paddle::Tensor conv_output_grad(const paddle::Tensor& grad_y, int64_t t_channels, bool bf16) {
  check_input(grad_y, kOp, "the output gradient");
  const auto& ys = grad_y.shape();
  const int64_t width = ys[3];
  if (!bf16 && width == t_channels) return grad_y;
  const std::vector<int64_t> t_shape = {ys[0], ys[1], ys[2], t_channels};
  const int64_t rows = ys[0] * ys[1] * ys[2];
  paddle::Tensor grad_t = empty_of(t_shape, bf16);
  last_channels(grad_y.data<float>(), width, t_channels, rows, bf16 ? nullptr : data_of(grad_t),
                bf16 ? bf16_data(grad_t) : nullptr);
  return grad_t;
}

// The stage's backward from t's gradient and what its forward kept (a, stats): its
// weight's gradient, and through the convolution, the ReLU (its mask recomputed from x)
// and the BN, x's gradient (bf16 with `grad_x_bf16`, for a convolution before the stage;
// else float32, plus `add`) and gamma's and beta's.
struct StageGrads {
  paddle::Tensor w;
  NormGrads norm;
};

StageGrads stage_backward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                          const paddle::Tensor& w, const paddle::Tensor& a,
                          const paddle::Tensor& stats,
                          const paddle::Tensor& grad_t, bool pool, bool bf16,
                          bool grad_x_bf16, Addend add) {
  const std::vector<int64_t> a_shape = conv_input_shape(x, pool, w);
  const Geometry g = conv_geometry(a_shape, w, bf16);
  const Rows shape = rows_of(x.shape());
  const int64_t channels = shape.channels;
  PD_CHECK(grad_t.shape() == conv_output_shape(g), kOp, ": the output gradient's shape");
  const float* st = stats.data<float>();
  auto row = [&](StatRow r) { return st + r * channels; };
  std::vector<float> partial(2 * channels);

  const memory grad_t_mem = conv_input(g.dst, grad_t, bf16);
  StageGrads grads{empty(w.shape()), {}};
  run_backward_weights(g, conv_input(g.src, a, bf16), grad_t_mem, data_of(grads.w));
  auto grad_a = empty(x.shape());
  if (pool) {
    auto grad_pooled = empty(a_shape);
    run_backward_data(g, grad_t_mem, w, data_of(grad_pooled));
    spread_pooled_grad(grad_pooled.data<float>(), x.shape(), data_of(grad_a));
  } else {
    run_backward_data(g, grad_t_mem, w, data_of(grad_a));
  }
  grads.norm = norm_backward(grad_a.data<float>(), data_of(grad_a), x.data<float>(),
                             Mask::kRecompute, nullptr, row(kScale), row(kShift),
                             gamma.data<float>(), row(kMean), row(kInvStd), shape, x.shape(),
                             grad_x_bf16, partial.data(), add);
  return grads;
}

// y = [x, t] along channels.
paddle::Tensor concat_of(const paddle::Tensor& x, const paddle::Tensor& t) {
  const auto& xs = x.shape();
  const int64_t t_channels = t.shape()[3];
  auto y = empty({xs[0], xs[1], xs[2], xs[3] + t_channels});
  concat_rows(x.data<float>(), xs[3], t.data<float>(), t_channels, xs[0] * xs[1] * xs[2],
              data_of(y));
  return y;
}

// With `concat`, x's share of y's gradient, added by the BN gradient pass.
Addend concat_share(const paddle::Tensor& grad_y, bool concat) {
  return concat ? Addend{grad_y.data<float>(), grad_y.shape()[3]} : Addend{};
}

}  // namespace

std::vector<paddle::Tensor> NormConvForward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                            const paddle::Tensor& beta,
                                            const paddle::Tensor& running_mean,
                                            const paddle::Tensor& running_var,
                                            const paddle::Tensor& w, float epsilon,
                                            float momentum, bool concat, bool pool,
                                            bool bf16_asked) {
  check_input(x, kOp, "the input");
  PD_CHECK(!(concat && pool), kOp, ": concat and pool exclude each other");
  Stage stage = stage_forward(x, {gamma, beta, running_mean, running_var}, w, epsilon,
                              momentum, pool, convolves_in_bf16(bf16_asked, pool));
  return {concat ? concat_of(x, stage.t) : stage.t, stage.a, stage.stats};
}

std::vector<paddle::Tensor> NormConvBackward(const paddle::Tensor& x, const paddle::Tensor& gamma,
                                             const paddle::Tensor& w, const paddle::Tensor& a,
                                             const paddle::Tensor& stats,
                                             const paddle::Tensor& grad_y, bool concat,
                                             bool pool, bool bf16_asked) {
  const bool bf16 = convolves_in_bf16(bf16_asked, pool);
  const int64_t t_channels = w.shape()[0];
  PD_CHECK(grad_y.shape()[3] == (concat ? x.shape()[3] : 0) + t_channels, kOp,
           ": the output gradient has ", grad_y.shape()[3], " channels");
  const StageGrads grads =
      stage_backward(x, gamma, w, a, stats,
                     conv_output_grad(grad_y, t_channels, bf16), pool, bf16, false,
                     concat_share(grad_y, concat));
  return {grads.norm.input, grads.norm.gamma, grads.norm.beta, grads.w};
}

// A DenseNet-BC layer: y = [x, conv2(relu(bn2(conv1(relu(bn1(x))))))], conv1 the 1x1
// bottleneck, conv2 the 3x3: both stages and the concatenation in one operator, the
// bottleneck's output gradient handed from one stage to the other in bf16 where they
// convolve in bf16.
std::vector<paddle::Tensor> BottleneckForward(
    const paddle::Tensor& x, const paddle::Tensor& gamma1, const paddle::Tensor& beta1,
    const paddle::Tensor& running_mean1, const paddle::Tensor& running_var1,
    const paddle::Tensor& w1, const paddle::Tensor& gamma2, const paddle::Tensor& beta2,
    const paddle::Tensor& running_mean2, const paddle::Tensor& running_var2,
    const paddle::Tensor& w2, float epsilon, float momentum, bool bf16) {
  check_input(x, kOp, "the input");
  Stage first = stage_forward(x, {gamma1, beta1, running_mean1, running_var1}, w1, epsilon,
                              momentum, false, bf16);
  Stage second = stage_forward(first.t, {gamma2, beta2, running_mean2, running_var2}, w2,
                               epsilon, momentum, false, bf16);
  return {concat_of(x, second.t), first.a, first.stats, first.t, second.a, second.stats};
}

std::vector<paddle::Tensor> BottleneckBackward(
    const paddle::Tensor& x, const paddle::Tensor& gamma1, const paddle::Tensor& w1,
    const paddle::Tensor& gamma2, const paddle::Tensor& w2, const paddle::Tensor& a1,
    const paddle::Tensor& stats1, const paddle::Tensor& t1, const paddle::Tensor& a2,
    const paddle::Tensor& stats2, const paddle::Tensor& grad_y, bool bf16) {
  const int64_t t_channels = w2.shape()[0];
  PD_CHECK(grad_y.shape()[3] == x.shape()[3] + t_channels, kOp,
           ": the output gradient has ", grad_y.shape()[3], " channels");
  const StageGrads second =
      stage_backward(t1, gamma2, w2, a2, stats2,
                     conv_output_grad(grad_y, t_channels, bf16), false, bf16, bf16, Addend{});
  const StageGrads first =
      stage_backward(x, gamma1, w1, a1, stats1, second.norm.input, false,
                     bf16, false, concat_share(grad_y, true));
  return {first.norm.input, first.norm.gamma, first.norm.beta, first.w,
          second.norm.gamma, second.norm.beta, second.w};
}

PD_BUILD_OP(fused_bn_relu_conv)
    .Inputs({"X", "Gamma", "Beta", "RunningMean", "RunningVar", "W"})
    .Outputs({"Y", "A", "Stats"})
    .Attrs({"epsilon: float", "momentum: float", "concat: bool", "pool: bool", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(NormConvForward));

PD_BUILD_GRAD_OP(fused_bn_relu_conv)
    .Inputs({"X", "Gamma", "W", "A", "Stats", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma"), paddle::Grad("Beta"),
              paddle::Grad("W")})
    .Attrs({"concat: bool", "pool: bool", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(NormConvBackward));

PD_BUILD_OP(fused_dense_bottleneck)
    .Inputs({"X", "Gamma1", "Beta1", "RunningMean1", "RunningVar1", "W1", "Gamma2", "Beta2",
             "RunningMean2", "RunningVar2", "W2"})
    .Outputs({"Y", "A1", "Stats1", "T1", "A2", "Stats2"})
    .Attrs({"epsilon: float", "momentum: float", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(BottleneckForward));

PD_BUILD_GRAD_OP(fused_dense_bottleneck)
    .Inputs({"X", "Gamma1", "W1", "Gamma2", "W2", "A1", "Stats1", "T1", "A2", "Stats2",
             paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("Gamma1"), paddle::Grad("Beta1"),
              paddle::Grad("W1"), paddle::Grad("Gamma2"), paddle::Grad("Beta2"),
              paddle::Grad("W2")})
    .Attrs({"bf16: bool"})
    .SetKernelFn(PD_KERNEL(BottleneckBackward));

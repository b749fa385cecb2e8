// A residual basic block's training pass as one custom operator, forward and backward:
//     y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// with batch statistics (training mode), the shortcut the identity, option A (subsample,
// zero-padded channels) or none (the plain twin). paddle_resnet/speed/fused_block.py calls
// it; Paddle's eager mode makes the backward operator its autograd node.
//
// Why one operator: in the per-layer path each block is ~16 dygraph dispatches (two
// convolutions as PyLayers, Paddle's BN, ReLU and add kernels and their gradients), and
// the BN/ReLU/add half of them made ~half of ResNet-20's step outside the convolutions
// (docs/performance.md). Here the convolutions are the same oneDNN primitives
// (conv_primitives.h), and everything between them is this file's passes over NHWC
// memory: a statistics pass and one normalize(+ReLU, + shortcut) pass forward, a
// reduction pass and one gradient pass per BN backward. With bf16 the normalize and
// gradient passes write the next convolution's bfloat16 input directly, and the forward
// keeps those bf16 copies for the weight gradients, so no separate rounding pass remains.
// Statistics, parameters, outputs and gradients stay float32.
//
// Statistics as Paddle's BatchNorm: the batch mean and biased variance (divided by
// N*H*W), running = momentum * running + (1 - momentum) * batch, updated here in place.
//
// The passes run on the calling thread (the default is one process per core, one thread
// each); the convolutions thread as oneDNN does. Hot loops are compiled for AVX-512, AVX2
// and baseline x86-64 and picked at load time (GCC's target_clones), so one cached build
// serves every host.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "conv_primitives.h"

using namespace paddle_resnet;        // NOLINT: the shared helpers of common.h
using namespace paddle_resnet::conv;  // NOLINT: the primitives of conv_primitives.h

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

namespace {

enum Shortcut { kNone = 0, kIdentity = 1, kOptionA = 2 };

// Float partial sums over this many rows, then added into doubles: float accumulation
// alone loses digits over N*H*W = 65,536 rows (ResNet-20's first stage at batch 64).
constexpr int64_t kRowBlock = 64;

// Round to nearest even, as oneDNN's reorders round float32 to bfloat16.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

VECTOR_CLONES void round_to_bf16(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}

// Per channel of `rows` x `channels`: sum of (t - pivot) and of its square, pivot the
// first row (shifting keeps E[d^2] - E[d]^2 from cancelling where |mean| >> std).
VECTOR_CLONES void moments(const float* t, int64_t rows, int64_t channels, double* sum,
                           double* square, float* partial) {
  const float* pivot = t;
  float* s = partial;
  float* q = partial + channels;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t c = 0; c < channels; ++c) s[c] = q[c] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      const float* row = t + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const float d = row[c] - pivot[c];
        s[c] += d;
        q[c] += d * d;
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      sum[c] += s[c];
      square[c] += q[c];
    }
  }
}

// y = max(0, t * a + b) per channel, into float32 or (bf16 set) bfloat16.
VECTOR_CLONES void scale_shift_relu(const float* t, int64_t rows, int64_t channels,
                                    const float* a, const float* b, float* y,
                                    uint16_t* y_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = t + r * channels;
    if (y_bf16 != nullptr) {
      uint16_t* out = y_bf16 + r * channels;
      for (int64_t c = 0; c < channels; ++c) out[c] = to_bf16(std::max(in[c] * a[c] + b[c], 0.0f));
    } else {
      float* out = y + r * channels;
      for (int64_t c = 0; c < channels; ++c) out[c] = std::max(in[c] * a[c] + b[c], 0.0f);
    }
  }
}

// The block's shortcut: for output row r (n, h, w), the input row it reads, or -1.
struct ShortcutMap {
  Shortcut kind;
  int64_t in_h, in_w, in_channels, out_h, out_w, stride, pad_before;

  int64_t source_row(int64_t r) const {
    if (kind == kNone) return -1;
    if (kind == kIdentity) return r;
    const int64_t w = r % out_w, h = (r / out_w) % out_h, n = r / (out_w * out_h);
    return (n * in_h + h * stride) * in_w + w * stride;
  }
};

// y = max(0, t * a + b + shortcut(x)) per channel: bn2, the residual add and the ReLU.
VECTOR_CLONES void block_tail(const float* t, int64_t rows, int64_t channels, const float* a,
                              const float* b, const float* x, const ShortcutMap& map,
                              float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = t + r * channels;
    float* out = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * a[c] + b[c];
    const int64_t source = map.source_row(r);
    if (source >= 0) {
      const float* s = x + source * map.in_channels;
      float* o = out + (map.kind == kOptionA ? map.pad_before : 0);
      for (int64_t c = 0; c < map.in_channels; ++c) o[c] += s[c];
    }
    for (int64_t c = 0; c < channels; ++c) out[c] = std::max(out[c], 0.0f);
  }
}

// A BN's backward, first pass: the incoming gradient through the ReLU's mask (g zeroed
// where the ReLU's input was not positive, in place), and per channel the sums of g and
// of g * (t - mean). The mask is `mask > 0` (the block's output), or with `mask` null
// t * a + b > 0, recomputed exactly as the forward pass computed it.
VECTOR_CLONES void masked_sums(float* g, const float* t, const float* mask, const float* a,
                               const float* b, const float* mean, int64_t rows,
                               int64_t channels, double* sum_g, double* sum_gd,
                               float* partial) {
  float* s = partial;
  float* q = partial + channels;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t c = 0; c < channels; ++c) s[c] = q[c] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      float* gr = g + r * channels;
      const float* tr = t + r * channels;
      if (mask != nullptr) {
        const float* mr = mask + r * channels;
        for (int64_t c = 0; c < channels; ++c) gr[c] = mr[c] > 0.0f ? gr[c] : 0.0f;
      } else {
        for (int64_t c = 0; c < channels; ++c) gr[c] = tr[c] * a[c] + b[c] > 0.0f ? gr[c] : 0.0f;
      }
      for (int64_t c = 0; c < channels; ++c) {
        s[c] += gr[c];
        q[c] += gr[c] * (tr[c] - mean[c]);
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      sum_g[c] += s[c];
      sum_gd[c] += q[c];
    }
  }
}

// Second pass: grad_t = k * g + slope * t + offset per channel (the BN input gradient,
// file comment of BlockBackward), into float32 or bfloat16.
VECTOR_CLONES void bn_input_grad(const float* g, const float* t, int64_t rows,
                                 int64_t channels, const float* k, const float* slope,
                                 const float* offset, float* out, uint16_t* out_bf16) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * channels;
    const float* tr = t + r * channels;
    if (out_bf16 != nullptr) {
      uint16_t* o = out_bf16 + r * channels;
      for (int64_t c = 0; c < channels; ++c) o[c] = to_bf16(k[c] * gr[c] + slope[c] * tr[c] + offset[c]);
    } else {
      float* o = out + r * channels;
      for (int64_t c = 0; c < channels; ++c) o[c] = k[c] * gr[c] + slope[c] * tr[c] + offset[c];
    }
  }
}

// grad_x += shortcut's backward of g (the masked gradient of the block's output).
VECTOR_CLONES void add_shortcut_grad(const float* g, int64_t rows, int64_t channels,
                                     const ShortcutMap& map, float* grad_x) {
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t source = map.source_row(r);
    if (source < 0) continue;
    const float* gr = g + r * channels + (map.kind == kOptionA ? map.pad_before : 0);
    float* out = grad_x + source * map.in_channels;
    for (int64_t c = 0; c < map.in_channels; ++c) out[c] += gr[c];
  }
}

// Rows and channels of an NHWC tensor.
struct Rows {
  int64_t rows, channels;
};
Rows rows_of(const std::vector<int64_t>& nhwc) { return {nhwc[0] * nhwc[1] * nhwc[2], nhwc[3]}; }

paddle::Tensor empty_of(const std::vector<int64_t>& shape, bool bf16) {
  return paddle::empty(shape, bf16 ? paddle::DataType::BFLOAT16 : paddle::DataType::FLOAT32,
                       paddle::CPUPlace());
}

uint16_t* bf16_data(const paddle::Tensor& t) {
  return static_cast<uint16_t*>(const_cast<void*>(t.data()));
}

// A convolution input as a primitive reads it: the bf16 tensor, or the float32 one.
memory conv_input(const Dims& dims, const paddle::Tensor& t, bool bf16) {
  return bind_activation(dims, bf16 ? kBF16 : kF32, t.data());
}

// The batch statistics of t: fills mean and inverse standard deviation, updates the
// running buffers, and returns nothing else; `partial` holds 2 x channels floats.
void batch_statistics(const float* t, Rows shape, float epsilon, float momentum,
                      float* mean, float* inv_std, float* running_mean, float* running_var,
                      float* partial) {
  std::vector<double> sum(shape.channels, 0.0), square(shape.channels, 0.0);
  moments(t, shape.rows, shape.channels, sum.data(), square.data(), partial);
  const double count = static_cast<double>(shape.rows);
  for (int64_t c = 0; c < shape.channels; ++c) {
    const double shifted_mean = sum[c] / count;
    const double variance = std::max(square[c] / count - shifted_mean * shifted_mean, 0.0);
    mean[c] = static_cast<float>(t[c] + shifted_mean);
    inv_std[c] = static_cast<float>(1.0 / std::sqrt(variance + epsilon));
    running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean[c];
    running_var[c] = momentum * running_var[c] + (1.0f - momentum) * static_cast<float>(variance);
  }
}

// Per channel a = gamma * inv_std, b = beta - mean * a: bn(t) = t * a + b.
void scale_shift(const float* gamma, const float* beta, const float* mean,
                 const float* inv_std, int64_t channels, float* a, float* b) {
  for (int64_t c = 0; c < channels; ++c) {
    a[c] = gamma[c] * inv_std[c];
    b[c] = beta[c] - mean[c] * a[c];
  }
}

void check_float(const paddle::Tensor& t, const char* name) {
  check_input(t, "fused_basic_block", name);
}

// Rows of the saved statistics tensor (kStats x channels).
enum StatRow { kMean1, kInvStd1, kA1, kB1, kMean2, kInvStd2, kStats };

void run_forward(const Geometry& g, const memory& src, const paddle::Tensor& weight,
                 float* dst) {
  Forward& f = conv::forward(g);
  f.primitive.execute(cpu_stream(),
                      {{DNNL_ARG_SRC, src},
                       {DNNL_ARG_WEIGHTS, f.weights.bind(g.weights, weight.data<float>())},
                       {DNNL_ARG_DST, bind_activation(g.dst, kF32, dst)}});
  cpu_stream().wait();
}

void run_backward_data(const Geometry& g, const memory& diff_dst, const paddle::Tensor& weight,
                       float* diff_src) {
  BackwardData& b = conv::backward_data(g);
  b.primitive.execute(cpu_stream(),
                      {{DNNL_ARG_DIFF_DST, diff_dst},
                       {DNNL_ARG_WEIGHTS, b.weights.bind(g.weights, weight.data<float>())},
                       {DNNL_ARG_DIFF_SRC, bind_activation(g.src, kF32, diff_src)}});
  cpu_stream().wait();
}

void run_backward_weights(const Geometry& g, const memory& src, const memory& diff_dst,
                          float* diff_weights) {
  BackwardWeights& b = conv::backward_weights(g);
  b.primitive.execute(cpu_stream(),
                      {{DNNL_ARG_SRC, src},
                       {DNNL_ARG_DIFF_DST, diff_dst},
                       {DNNL_ARG_DIFF_WEIGHTS, b.diff_weights.target(g.weights, diff_weights)}});
  b.diff_weights.finish(g.weights, diff_weights);
  cpu_stream().wait();
}

struct BlockGeometry {
  Geometry conv1, conv2;
  ShortcutMap shortcut;
  std::vector<int64_t> mid_shape;  // NHWC of conv1's and conv2's outputs
};

BlockGeometry block_geometry(const paddle::Tensor& x, const paddle::Tensor& w1,
                             const paddle::Tensor& w2, int stride, int shortcut,
                             int pad_before, bool bf16) {
  const auto& xs = x.shape();
  PD_CHECK(xs.size() == 4, "fused_basic_block: a 4-D NHWC input expected");
  PD_CHECK(shortcut >= kNone && shortcut <= kOptionA, "fused_basic_block: shortcut ",
           shortcut, " is not 0 (none), 1 (identity) or 2 (option A)");
  const Geometry c1 = geometry(xs, w1.shape(), {stride, stride}, {1, 1, 1, 1}, bf16);
  const std::vector<int64_t> mid = {c1.dst[0], c1.dst[2], c1.dst[3], c1.dst[1]};
  const Geometry c2 = geometry(mid, w2.shape(), {1, 1}, {1, 1, 1, 1}, bf16);
  PD_CHECK(c2.dst[1] == c1.dst[1], "fused_basic_block: conv2 changes the channel count");
  ShortcutMap map{static_cast<Shortcut>(shortcut), xs[1], xs[2], xs[3], mid[1], mid[2],
                  stride, pad_before};
  if (shortcut == kIdentity) {
    PD_CHECK(stride == 1 && xs[3] == mid[3], "fused_basic_block: an identity shortcut needs "
             "stride 1 and equal channels");
  }
  if (shortcut == kOptionA) {
    PD_CHECK(pad_before >= 0 && pad_before + xs[3] <= mid[3],
             "fused_basic_block: option A pads ", xs[3], " channels to ", mid[3]);
  }
  return {c1, c2, map, mid};
}

}  // namespace

std::vector<paddle::Tensor> BlockForward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& beta1, const paddle::Tensor& running_mean1,
    const paddle::Tensor& running_var1, const paddle::Tensor& w2, const paddle::Tensor& gamma2,
    const paddle::Tensor& beta2, const paddle::Tensor& running_mean2,
    const paddle::Tensor& running_var2, int stride, int shortcut, int pad_before,
    float epsilon, float momentum, bool bf16) {
  for (const auto* t : {&x, &w1, &gamma1, &beta1, &running_mean1, &running_var1, &w2, &gamma2,
                        &beta2, &running_mean2, &running_var2}) {
    check_float(*t, "every input");
  }
  const BlockGeometry bg = block_geometry(x, w1, w2, stride, shortcut, pad_before, bf16);
  const Rows mid = rows_of(bg.mid_shape);
  const int64_t channels = mid.channels;
  std::vector<float> partial(2 * channels);

  // conv1 reads x in bf16: a rounded copy, kept for conv1's weight gradient.
  paddle::Tensor x_in = bf16 ? empty_of(x.shape(), true) : empty_of({1}, false);
  if (bf16) round_to_bf16(x.data<float>(), bf16_data(x_in), x.numel());
  const memory x_mem = bf16 ? conv_input(bg.conv1.src, x_in, true) : conv_input(bg.conv1.src, x, false);

  auto stats = empty({kStats, channels});
  float* st = data_of(stats);
  auto row = [&](StatRow r) { return st + r * channels; };

  auto t1 = empty(bg.mid_shape);
  run_forward(bg.conv1, x_mem, w1, data_of(t1));
  batch_statistics(t1.data<float>(), mid, epsilon, momentum, row(kMean1), row(kInvStd1),
                   data_of(running_mean1), data_of(running_var1), partial.data());
  scale_shift(gamma1.data<float>(), beta1.data<float>(), row(kMean1), row(kInvStd1), channels,
              row(kA1), row(kB1));
  auto a1 = empty_of(bg.mid_shape, bf16);
  scale_shift_relu(t1.data<float>(), mid.rows, channels, row(kA1), row(kB1),
                   bf16 ? nullptr : data_of(a1), bf16 ? bf16_data(a1) : nullptr);

  auto t2 = empty(bg.mid_shape);
  run_forward(bg.conv2, conv_input(bg.conv2.src, a1, bf16), w2, data_of(t2));
  batch_statistics(t2.data<float>(), mid, epsilon, momentum, row(kMean2), row(kInvStd2),
                   data_of(running_mean2), data_of(running_var2), partial.data());
  std::vector<float> a2(channels), b2(channels);
  scale_shift(gamma2.data<float>(), beta2.data<float>(), row(kMean2), row(kInvStd2), channels,
              a2.data(), b2.data());
  auto y = empty(bg.mid_shape);
  block_tail(t2.data<float>(), mid.rows, channels, a2.data(), b2.data(), x.data<float>(),
             bg.shortcut, data_of(y));
  return {y, x_in, t1, a1, t2, stats};
}

namespace {

// One BN's input gradient from the masked output gradient g (after masked_sums):
//   grad_t = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat)),  xhat = (t - mean) * inv_std
// rewritten per channel as k * g + slope * t + offset. Also fills grad_gamma = sum(g * xhat)
// and grad_beta = sum(g).
void bn_backward(const float* g, const float* t, Rows shape, const float* gamma,
                 const float* mean, const float* inv_std, const double* sum_g,
                 const double* sum_gd, float* grad_gamma, float* grad_beta, float* out,
                 uint16_t* out_bf16) {
  const int64_t channels = shape.channels;
  const double count = static_cast<double>(shape.rows);
  std::vector<float> k(channels), slope(channels), offset(channels);
  for (int64_t c = 0; c < channels; ++c) {
    const double mean_g = sum_g[c] / count;
    const double mean_gx = sum_gd[c] * inv_std[c] / count;  // mean(g * xhat)
    const double kc = static_cast<double>(gamma[c]) * inv_std[c];
    k[c] = static_cast<float>(kc);
    slope[c] = static_cast<float>(-kc * inv_std[c] * mean_gx);
    offset[c] = static_cast<float>(-kc * mean_g + kc * inv_std[c] * mean_gx * mean[c]);
    grad_gamma[c] = static_cast<float>(sum_gd[c] * inv_std[c]);
    grad_beta[c] = static_cast<float>(sum_g[c]);
  }
  bn_input_grad(g, t, shape.rows, channels, k.data(), slope.data(), offset.data(), out,
                out_bf16);
}

}  // namespace

std::vector<paddle::Tensor> BlockBackward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& w2, const paddle::Tensor& gamma2, const paddle::Tensor& x_in,
    const paddle::Tensor& t1, const paddle::Tensor& a1, const paddle::Tensor& t2,
    const paddle::Tensor& stats, const paddle::Tensor& y, const paddle::Tensor& grad_y,
    int stride, int shortcut, int pad_before, bool bf16) {
  check_float(grad_y, "the output gradient");
  const BlockGeometry bg = block_geometry(x, w1, w2, stride, shortcut, pad_before, bf16);
  const Rows mid = rows_of(bg.mid_shape);
  const int64_t channels = mid.channels;
  const float* st = stats.data<float>();
  auto row = [&](StatRow r) { return st + r * channels; };
  std::vector<float> partial(2 * channels);

  // The tail: through the last ReLU (mask y > 0), then bn2.
  auto g2 = grad_y.copy_to(paddle::CPUPlace(), true);
  std::vector<double> sum_g(channels, 0.0), sum_gd(channels, 0.0);
  masked_sums(data_of(g2), t2.data<float>(), y.data<float>(), nullptr, nullptr, row(kMean2),
              mid.rows, channels, sum_g.data(), sum_gd.data(), partial.data());
  auto grad_gamma2 = empty({channels});
  auto grad_beta2 = empty({channels});
  auto grad_t2 = empty_of(bg.mid_shape, bf16);
  bn_backward(g2.data<float>(), t2.data<float>(), mid, gamma2.data<float>(), row(kMean2),
              row(kInvStd2), sum_g.data(), sum_gd.data(), data_of(grad_gamma2),
              data_of(grad_beta2), bf16 ? nullptr : data_of(grad_t2),
              bf16 ? bf16_data(grad_t2) : nullptr);

  // conv2's gradients: its input's (into g1) and its weight's.
  const memory grad_t2_mem = conv_input(bg.conv2.dst, grad_t2, bf16);
  auto g1 = empty(bg.mid_shape);
  run_backward_data(bg.conv2, grad_t2_mem, w2, data_of(g1));
  auto grad_w2 = empty(w2.shape());
  run_backward_weights(bg.conv2, conv_input(bg.conv2.src, a1, bf16), grad_t2_mem,
                       data_of(grad_w2));

  // Through the first ReLU (its mask recomputed from t1) and bn1.
  std::fill(sum_g.begin(), sum_g.end(), 0.0);
  std::fill(sum_gd.begin(), sum_gd.end(), 0.0);
  masked_sums(data_of(g1), t1.data<float>(), nullptr, row(kA1), row(kB1), row(kMean1),
              mid.rows, channels, sum_g.data(), sum_gd.data(), partial.data());
  auto grad_gamma1 = empty({channels});
  auto grad_beta1 = empty({channels});
  auto grad_t1 = empty_of(bg.mid_shape, bf16);
  bn_backward(g1.data<float>(), t1.data<float>(), mid, gamma1.data<float>(), row(kMean1),
              row(kInvStd1), sum_g.data(), sum_gd.data(), data_of(grad_gamma1),
              data_of(grad_beta1), bf16 ? nullptr : data_of(grad_t1),
              bf16 ? bf16_data(grad_t1) : nullptr);

  // conv1's gradients, then the shortcut's share of x's.
  const memory grad_t1_mem = conv_input(bg.conv1.dst, grad_t1, bf16);
  auto grad_x = empty(x.shape());
  run_backward_data(bg.conv1, grad_t1_mem, w1, data_of(grad_x));
  auto grad_w1 = empty(w1.shape());
  run_backward_weights(bg.conv1, bf16 ? conv_input(bg.conv1.src, x_in, true)
                                      : conv_input(bg.conv1.src, x, false),
                       grad_t1_mem, data_of(grad_w1));
  add_shortcut_grad(g2.data<float>(), mid.rows, channels, bg.shortcut, data_of(grad_x));
  return {grad_x, grad_w1, grad_gamma1, grad_beta1, grad_w2, grad_gamma2, grad_beta2};
}

PD_BUILD_OP(fused_basic_block)
    .Inputs({"X", "W1", "Gamma1", "Beta1", "RunningMean1", "RunningVar1", "W2", "Gamma2",
             "Beta2", "RunningMean2", "RunningVar2"})
    .Outputs({"Y", "XIn", "T1", "A1", "T2", "Stats"})
    .Attrs({"stride: int", "shortcut: int", "pad_before: int", "epsilon: float",
            "momentum: float", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(BlockForward));

PD_BUILD_GRAD_OP(fused_basic_block)
    .Inputs({"X", "W1", "Gamma1", "W2", "Gamma2", "XIn", "T1", "A1", "T2", "Stats", "Y",
             paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W1"), paddle::Grad("Gamma1"),
              paddle::Grad("Beta1"), paddle::Grad("W2"), paddle::Grad("Gamma2"),
              paddle::Grad("Beta2")})
    .Attrs({"stride: int", "shortcut: int", "pad_before: int", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(BlockBackward));

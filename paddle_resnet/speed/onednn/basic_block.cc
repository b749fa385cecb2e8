// A residual basic block's training pass as one custom operator, forward and backward:
//     y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// with batch statistics (training mode), the shortcut the identity, option A (subsample,
// zero-padded channels) or none (the plain twin): `fused_basic_block`; or a projection,
// bn3(conv3(x)) with a 1x1 convolution (options B and C): `fused_basic_block_projection`.
// paddle_resnet/speed/fused_block.py calls them; Paddle's eager mode makes each one's
// backward operator its autograd node.
//
// Why one operator: in the per-layer path each block is ~16 dygraph dispatches (two
// convolutions as PyLayers, Paddle's BN, ReLU and add kernels and their gradients), and
// the BN/ReLU/add half of them made ~half of ResNet-20's step outside the convolutions
// (docs/performance.md). Here the convolutions are the same oneDNN primitives
// (conv_primitives.h), and everything between them is this file's passes over NHWC
// memory (norm_passes.cc, and the tail here): a statistics pass and one normalize(+ReLU,
// + shortcut) pass forward, a reduction pass and one gradient pass per BN backward. With
// bf16 the normalize and gradient passes write the next convolution's bfloat16 input
// directly, and the forward keeps those bf16 copies for the weight gradients, so no
// separate rounding pass remains.
// Statistics, parameters, outputs and gradients stay float32.
//
// The passes run on the calling thread (the default is one process per core, one thread
// each); the convolutions thread as oneDNN does. Hot loops are compiled for AVX-512, AVX2
// and baseline x86-64 and picked at load time (GCC's target_clones), so one cached build
// serves every host.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "conv_primitives.h"
#include "norm_passes.h"
#include "vector_rows.h"

using namespace paddle_resnet;        // NOLINT: the shared helpers of common.h
using namespace paddle_resnet::conv;  // NOLINT: the primitives of conv_primitives.h
using namespace paddle_resnet::norm;  // NOLINT: the BN passes of norm_passes.h

namespace {

enum Shortcut { kNone = 0, kIdentity = 1, kOptionA = 2, kProjection = 3 };

// The block's shortcut: for output row r (n, h, w), the input row it reads, or -1.
struct ShortcutMap {
  Shortcut kind;
  int64_t in_h, in_w, in_channels, out_h, out_w, stride, pad_before;

  int64_t source_row(int64_t r) const {
    if (kind == kNone || kind == kProjection) return -1;
    if (kind == kIdentity) return r;
    const int64_t w = r % out_w, h = (r / out_w) % out_h, n = r / (out_w * out_h);
    return (n * in_h + h * stride) * in_w + w * stride;
  }
};

// y = max(0, t * a + b + shortcut(x)) per channel: bn2, the residual add and the ReLU;
// a projection shortcut is bn3's t3 * a3 + b3 (t3 null otherwise). Option A's shortcut
// adds to channels that need not start on a vector, so it takes the loop over any count.
template <int kLanes, int kVectors>
ALWAYS_INLINE void block_tail_of(const float* t, int64_t rows, int64_t channels,
                                 const float* a, const float* b, const float* x,
                                 const ShortcutMap& map, const float* t3, const float* a3,
                                 const float* b3, float* y) {
  if constexpr (kVectors > 0) {
    if (map.kind != kOptionA) {
      using R = Row<kLanes, kVectors>;
      const R va = R::of(a), vb = R::of(b);
      R va3{}, vb3{};
      if (t3 != nullptr) va3 = R::of(a3), vb3 = R::of(b3);
      for (int64_t r = 0; r < rows; ++r) {
        const R in = R::of(t + r * channels);
        R out;
        for (int i = 0; i < kVectors; ++i) out.v[i] = in.v[i] * va.v[i] + vb.v[i];
        if (t3 != nullptr) {
          const R p = R::of(t3 + r * channels);
          for (int i = 0; i < kVectors; ++i) out.v[i] += p.v[i] * va3.v[i] + vb3.v[i];
        }
        if (map.kind == kIdentity) {
          const R shortcut = R::of(x + r * channels);
          for (int i = 0; i < kVectors; ++i) out.v[i] += shortcut.v[i];
        }
        for (int i = 0; i < kVectors; ++i) out.v[i] = relu<kLanes>(out.v[i]);
        out.store_to(y + r * channels);
      }
      return;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = t + r * channels;
    float* out = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) out[c] = in[c] * a[c] + b[c];
    if (t3 != nullptr) {
      const float* p = t3 + r * channels;
      for (int64_t c = 0; c < channels; ++c) out[c] += p[c] * a3[c] + b3[c];
    }
    const int64_t source = map.source_row(r);
    if (source >= 0) {
      const float* s = x + source * map.in_channels;
      float* o = out + (map.kind == kOptionA ? map.pad_before : 0);
      for (int64_t c = 0; c < map.in_channels; ++c) o[c] += s[c];
    }
    for (int64_t c = 0; c < channels; ++c) out[c] = std::max(out[c], 0.0f);
  }
}

VECTOR_CLONES void block_tail(const float* t, int64_t rows, int64_t channels, const float* a,
                              const float* b, const float* x, const ShortcutMap& map,
                              const float* t3, const float* a3, const float* b3, float* y) {
  BY_CHANNELS(channels,
              block_tail_of<kLanes, kVectors>(t, rows, channels, a, b, x, map, t3, a3, b3, y))
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

void check_float(const paddle::Tensor& t, const char* name) {
  check_input(t, "fused_basic_block", name);
}

// Rows of the saved statistics tensor (kStats x channels); the projection's last two.
enum StatRow { kMean1, kInvStd1, kA1, kB1, kMean2, kInvStd2, kMean3, kInvStd3, kStats };

struct BlockGeometry {
  Geometry conv1, conv2, conv3;  // conv3: the projection's 1x1 (unused without one)
  ShortcutMap shortcut;
  std::vector<int64_t> mid_shape;  // NHWC of the block's output (and of t1, t2, t3)
};

BlockGeometry block_geometry(const paddle::Tensor& x, const paddle::Tensor& w1,
                             const paddle::Tensor& w2, const paddle::Tensor* w3, int stride,
                             int shortcut, int pad_before, bool bf16) {
  const auto& xs = x.shape();
  PD_CHECK(xs.size() == 4, "fused_basic_block: a 4-D NHWC input expected");
  PD_CHECK(shortcut >= kNone && shortcut <= kOptionA, "fused_basic_block: shortcut ",
           shortcut, " is not 0 (none), 1 (identity) or 2 (option A)");
  const Geometry c1 = geometry(xs, w1.shape(), {stride, stride}, {1, 1, 1, 1}, bf16);
  const std::vector<int64_t> mid = {c1.dst[0], c1.dst[2], c1.dst[3], c1.dst[1]};
  const Geometry c2 = geometry(mid, w2.shape(), {1, 1}, {1, 1, 1, 1}, bf16);
  PD_CHECK(c2.dst[1] == c1.dst[1], "fused_basic_block: conv2 changes the channel count");
  Geometry c3 = c1;
  if (w3 != nullptr) {
    c3 = geometry(xs, w3->shape(), {stride, stride}, {0, 0, 0, 0}, bf16);
    PD_CHECK(c3.dst == c1.dst, "fused_basic_block: the projection's output is not the "
             "block's shape");
    shortcut = kProjection;
  }
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
  return {c1, c2, c3, map, mid};
}

struct Projection {
  const paddle::Tensor& weight;
  Norm norm;
};

struct Hyper {
  int stride, shortcut, pad_before;
  float epsilon, momentum;
  bool bf16;
};

std::vector<paddle::Tensor> forward_block(const paddle::Tensor& x, const paddle::Tensor& w1,
                                          const Norm& n1, const paddle::Tensor& w2,
                                          const Norm& n2, const Projection* projection,
                                          const Hyper& h) {
  check_float(x, "the input");
  check_float(w1, "conv1's weight");
  check_float(w2, "conv2's weight");
  check_norm(n1, "fused_basic_block");
  check_norm(n2, "fused_basic_block");
  if (projection != nullptr) {
    check_float(projection->weight, "the projection's weight");
    check_norm(projection->norm, "fused_basic_block");
  }
  const BlockGeometry bg = block_geometry(x, w1, w2, projection ? &projection->weight : nullptr,
                                          h.stride, h.shortcut, h.pad_before, h.bf16);
  const Rows mid = rows_of(bg.mid_shape);
  const int64_t channels = mid.channels;
  std::vector<float> partial(2 * channels);
  const bool bf16 = h.bf16;

  // conv1 (and the projection) read x in bf16: a rounded copy, kept for the weight
  // gradients.
  paddle::Tensor x_in = bf16 ? empty_of(x.shape(), true) : empty_of({1}, false);
  if (bf16) round_to_bf16(x.data<float>(), bf16_data(x_in), x.numel());
  const memory x_mem = conv_input(bg.conv1.src, bf16 ? x_in : x, bf16);

  auto stats = empty({kStats, channels});
  float* st = data_of(stats);
  auto row = [&](StatRow r) { return st + r * channels; };

  auto t1 = empty(bg.mid_shape);
  run_forward(bg.conv1, x_mem, w1, data_of(t1));
  normalize_stats(t1.data<float>(), mid, n1, h.epsilon, h.momentum, row(kMean1), row(kInvStd1),
                  row(kA1), row(kB1), partial.data());
  auto a1 = empty_of(bg.mid_shape, bf16);
  scale_shift_relu(t1.data<float>(), mid.rows, channels, row(kA1), row(kB1),
                   bf16 ? nullptr : data_of(a1), bf16 ? bf16_data(a1) : nullptr);

  auto t2 = empty(bg.mid_shape);
  run_forward(bg.conv2, conv_input(bg.conv2.src, a1, bf16), w2, data_of(t2));
  std::vector<float> a2(channels), b2(channels), a3(channels), b3(channels);
  normalize_stats(t2.data<float>(), mid, n2, h.epsilon, h.momentum, row(kMean2), row(kInvStd2),
                  a2.data(), b2.data(), partial.data());

  paddle::Tensor t3 = empty({1});
  if (projection != nullptr) {
    t3 = empty(bg.mid_shape);
    run_forward(bg.conv3, x_mem, projection->weight, data_of(t3));
    normalize_stats(t3.data<float>(), mid, projection->norm, h.epsilon, h.momentum,
                    row(kMean3), row(kInvStd3), a3.data(), b3.data(), partial.data());
  }
  auto y = empty(bg.mid_shape);
  block_tail(t2.data<float>(), mid.rows, channels, a2.data(), b2.data(), x.data<float>(),
             bg.shortcut, projection ? t3.data<float>() : nullptr, a3.data(), b3.data(),
             data_of(y));
  std::vector<paddle::Tensor> saved = {y, x_in, t1, a1, t2, stats};
  if (projection != nullptr) saved.push_back(t3);
  return saved;
}

// The saved forward tensors the backward reads.
struct Saved {
  const paddle::Tensor& x_in;
  const paddle::Tensor& t1;
  const paddle::Tensor& a1;
  const paddle::Tensor& t2;
  const paddle::Tensor* t3;
  const paddle::Tensor& stats;
  const paddle::Tensor& y;
};

std::vector<paddle::Tensor> backward_block(const paddle::Tensor& x, const paddle::Tensor& w1,
                                           const paddle::Tensor& gamma1,
                                           const paddle::Tensor& w2,
                                           const paddle::Tensor& gamma2,
                                           const paddle::Tensor* w3,
                                           const paddle::Tensor* gamma3, const Saved& saved,
                                           const paddle::Tensor& grad_y, const Hyper& h) {
  check_float(grad_y, "the output gradient");
  const BlockGeometry bg = block_geometry(x, w1, w2, w3, h.stride, h.shortcut, h.pad_before,
                                          h.bf16);
  const Rows mid = rows_of(bg.mid_shape);
  const int64_t channels = mid.channels;
  const bool bf16 = h.bf16;
  const float* st = saved.stats.data<float>();
  auto row = [&](StatRow r) { return st + r * channels; };
  std::vector<float> partial(2 * channels);

  // The tail: through the last ReLU (mask y > 0), then bn2.
  auto g2 = empty(bg.mid_shape);
  const NormGrads n2 =
      norm_backward(grad_y.data<float>(), data_of(g2), saved.t2.data<float>(), Mask::kOutput,
                    saved.y.data<float>(), nullptr, nullptr, gamma2.data<float>(), row(kMean2),
                    row(kInvStd2), mid, bg.mid_shape, bf16, partial.data());

  // conv2's gradients: its input's (into g1) and its weight's.
  const memory grad_t2 = conv_input(bg.conv2.dst, n2.input, bf16);
  auto g1 = empty(bg.mid_shape);
  run_backward_data(bg.conv2, grad_t2, w2, data_of(g1));
  auto grad_w2 = empty(w2.shape());
  run_backward_weights(bg.conv2, conv_input(bg.conv2.src, saved.a1, bf16), grad_t2,
                       data_of(grad_w2));

  // Through the first ReLU (its mask recomputed from t1) and bn1.
  const NormGrads n1 =
      norm_backward(g1.data<float>(), data_of(g1), saved.t1.data<float>(), Mask::kRecompute,
                    nullptr, row(kA1), row(kB1), gamma1.data<float>(), row(kMean1),
                    row(kInvStd1), mid, bg.mid_shape, bf16, partial.data());

  // conv1's gradients, then the shortcut's share of x's.
  const memory x_mem = conv_input(bg.conv1.src, bf16 ? saved.x_in : x, bf16);
  const memory grad_t1 = conv_input(bg.conv1.dst, n1.input, bf16);
  auto grad_x = empty(x.shape());
  run_backward_data(bg.conv1, grad_t1, w1, data_of(grad_x));
  auto grad_w1 = empty(w1.shape());
  run_backward_weights(bg.conv1, x_mem, grad_t1, data_of(grad_w1));
  std::vector<paddle::Tensor> grads = {grad_x, grad_w1, n1.gamma, n1.beta, grad_w2, n2.gamma,
                                       n2.beta};
  if (w3 == nullptr) {
    add_shortcut_grad(g2.data<float>(), mid.rows, channels, bg.shortcut, data_of(grad_x));
    return grads;
  }
  // The projection: bn3 unmasked (g2 is masked already), then its 1x1 convolution, whose
  // input gradient adds to x's.
  const NormGrads n3 =
      norm_backward(g2.data<float>(), data_of(g2), saved.t3->data<float>(), Mask::kNone,
                    nullptr, nullptr, nullptr, gamma3->data<float>(), row(kMean3),
                    row(kInvStd3), mid, bg.mid_shape, bf16, partial.data());
  const memory grad_t3 = conv_input(bg.conv3.dst, n3.input, bf16);
  auto grad_x3 = empty(x.shape());
  run_backward_data(bg.conv3, grad_t3, *w3, data_of(grad_x3));
  auto grad_w3 = empty(w3->shape());
  run_backward_weights(bg.conv3, x_mem, grad_t3, data_of(grad_w3));
  float* gx = data_of(grad_x);
  const float* gx3 = grad_x3.data<float>();
  for (int64_t i = 0, n = grad_x.numel(); i < n; ++i) gx[i] += gx3[i];
  grads.insert(grads.end(), {grad_w3, n3.gamma, n3.beta});
  return grads;
}

}  // namespace

std::vector<paddle::Tensor> BlockForward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& beta1, const paddle::Tensor& running_mean1,
    const paddle::Tensor& running_var1, const paddle::Tensor& w2, const paddle::Tensor& gamma2,
    const paddle::Tensor& beta2, const paddle::Tensor& running_mean2,
    const paddle::Tensor& running_var2, int stride, int shortcut, int pad_before,
    float epsilon, float momentum, bool bf16) {
  return forward_block(x, w1, {gamma1, beta1, running_mean1, running_var1}, w2,
                       {gamma2, beta2, running_mean2, running_var2}, nullptr,
                       {stride, shortcut, pad_before, epsilon, momentum, bf16});
}

std::vector<paddle::Tensor> BlockBackward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& w2, const paddle::Tensor& gamma2, const paddle::Tensor& x_in,
    const paddle::Tensor& t1, const paddle::Tensor& a1, const paddle::Tensor& t2,
    const paddle::Tensor& stats, const paddle::Tensor& y, const paddle::Tensor& grad_y,
    int stride, int shortcut, int pad_before, bool bf16) {
  return backward_block(x, w1, gamma1, w2, gamma2, nullptr, nullptr,
                        {x_in, t1, a1, t2, nullptr, stats, y}, grad_y,
                        {stride, shortcut, pad_before, 0.0f, 0.0f, bf16});
}

std::vector<paddle::Tensor> ProjectionBlockForward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& beta1, const paddle::Tensor& running_mean1,
    const paddle::Tensor& running_var1, const paddle::Tensor& w2, const paddle::Tensor& gamma2,
    const paddle::Tensor& beta2, const paddle::Tensor& running_mean2,
    const paddle::Tensor& running_var2, const paddle::Tensor& w3, const paddle::Tensor& gamma3,
    const paddle::Tensor& beta3, const paddle::Tensor& running_mean3,
    const paddle::Tensor& running_var3, int stride, float epsilon, float momentum, bool bf16) {
  const Projection projection{w3, {gamma3, beta3, running_mean3, running_var3}};
  return forward_block(x, w1, {gamma1, beta1, running_mean1, running_var1}, w2,
                       {gamma2, beta2, running_mean2, running_var2}, &projection,
                       {stride, kNone, 0, epsilon, momentum, bf16});
}

std::vector<paddle::Tensor> ProjectionBlockBackward(
    const paddle::Tensor& x, const paddle::Tensor& w1, const paddle::Tensor& gamma1,
    const paddle::Tensor& w2, const paddle::Tensor& gamma2, const paddle::Tensor& w3,
    const paddle::Tensor& gamma3, const paddle::Tensor& x_in, const paddle::Tensor& t1,
    const paddle::Tensor& a1, const paddle::Tensor& t2, const paddle::Tensor& t3,
    const paddle::Tensor& stats, const paddle::Tensor& y, const paddle::Tensor& grad_y,
    int stride, bool bf16) {
  return backward_block(x, w1, gamma1, w2, gamma2, &w3, &gamma3,
                        {x_in, t1, a1, t2, &t3, stats, y}, grad_y,
                        {stride, kNone, 0, 0.0f, 0.0f, bf16});
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

PD_BUILD_OP(fused_basic_block_projection)
    .Inputs({"X", "W1", "Gamma1", "Beta1", "RunningMean1", "RunningVar1", "W2", "Gamma2",
             "Beta2", "RunningMean2", "RunningVar2", "W3", "Gamma3", "Beta3", "RunningMean3",
             "RunningVar3"})
    .Outputs({"Y", "XIn", "T1", "A1", "T2", "Stats", "T3"})
    .Attrs({"stride: int", "epsilon: float", "momentum: float", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(ProjectionBlockForward));

PD_BUILD_GRAD_OP(fused_basic_block_projection)
    .Inputs({"X", "W1", "Gamma1", "W2", "Gamma2", "W3", "Gamma3", "XIn", "T1", "A1", "T2", "T3",
             "Stats", "Y", paddle::Grad("Y")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W1"), paddle::Grad("Gamma1"),
              paddle::Grad("Beta1"), paddle::Grad("W2"), paddle::Grad("Gamma2"),
              paddle::Grad("Beta2"), paddle::Grad("W3"), paddle::Grad("Gamma3"),
              paddle::Grad("Beta3")})
    .Attrs({"stride: int", "bf16: bool"})
    .SetKernelFn(PD_KERNEL(ProjectionBlockBackward));

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

// The BN passes below have two bodies: a loop over any channel count, and one over 16, 32
// or 64 channels (ResNet-20's stages) as 1, 2 or 4 vectors of 16 floats whose per-channel
// sums stay in registers. With the count known only at run time GCC keeps those sums in
// memory and stores them every row, and the row loop waits on that (docs/performance.md).
// The two compute the same operations in the same order, so their results are equal bit
// for bit (with -ffp-contract=off, onednn_build.py). Wider rows (ResNet-18's 128-512
// channels) keep the loop: there a row is long enough that the sums' stores do not stall it,
// and the vector body in runs of 64 channels, tried, made ResNet-18's passes slower (5.5% ->
// 7.1% of the step's samples, docs/performance.md).
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define BY_CHANNELS(channels, call)                           \
  switch (channels) {                                         \
    case 16: { constexpr int kVectors = 1; call; break; }     \
    case 32: { constexpr int kVectors = 2; call; break; }     \
    case 64: { constexpr int kVectors = 4; call; break; }     \
    default: { constexpr int kVectors = 0; call; break; }     \
  }

namespace {

enum Shortcut { kNone = 0, kIdentity = 1, kOptionA = 2, kProjection = 3 };

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

// 16 floats as one value (GCC's vector extension): one AVX-512 register, two AVX2 or four
// SSE ones, as each clone compiles it.
typedef float Floats __attribute__((vector_size(64)));
typedef uint32_t Words __attribute__((vector_size(64)));
typedef uint16_t Halves __attribute__((vector_size(32)));
constexpr int64_t kLanes = 16;

ALWAYS_INLINE Floats load(const float* p) {
  Floats v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

ALWAYS_INLINE void store(float* p, Floats v) { std::memcpy(p, &v, sizeof(v)); }

// to_bf16 of each lane.
ALWAYS_INLINE void store_bf16(uint16_t* p, Floats v) {
  Words u;
  std::memcpy(&u, &v, sizeof(u));
  const Words rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const Words quiet_nan = (u >> 16) | 0x40u;
  const Halves h = __builtin_convertvector((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded,
                                           Halves);
  std::memcpy(p, &h, sizeof(h));
}

// std::max(v, 0.0f) of each lane, -0.0 and NaN included.
ALWAYS_INLINE Floats relu(Floats v) {
  const Floats zero = {};
  return v < zero ? zero : v;
}

VECTOR_CLONES void round_to_bf16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store_bf16(y + i, load(x + i));
  for (; i < n; ++i) y[i] = to_bf16(x[i]);
}

// One row of kVectors vectors: its channels' values as registers.
template <int kVectors>
struct Row {
  Floats v[kVectors];

  static ALWAYS_INLINE Row of(const float* p) {
    Row row;
    for (int i = 0; i < kVectors; ++i) row.v[i] = load(p + i * kLanes);
    return row;
  }
  ALWAYS_INLINE void store_to(float* p) const {
    for (int i = 0; i < kVectors; ++i) store(p + i * kLanes, v[i]);
  }
};

// A row block's float sums s and q added into the double totals, through `partial`.
template <int kVectors>
ALWAYS_INLINE void add_block_sums(const Row<kVectors>& s, const Row<kVectors>& q,
                                  int64_t channels, float* partial, double* total_s,
                                  double* total_q) {
  s.store_to(partial);
  q.store_to(partial + channels);
  for (int64_t c = 0; c < channels; ++c) {
    total_s[c] += partial[c];
    total_q[c] += partial[channels + c];
  }
}

// Per channel of `rows` x `channels`: sum of (t - pivot) and of its square, pivot the
// first row (shifting keeps E[d^2] - E[d]^2 from cancelling where |mean| >> std).
template <int kVectors>
ALWAYS_INLINE void moments_of(const float* t, int64_t rows, int64_t channels, double* sum,
                              double* square, float* partial) {
  if constexpr (kVectors > 0) {
    const Row<kVectors> pivot = Row<kVectors>::of(t);
    for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
      const int64_t r1 = std::min(rows, r0 + kRowBlock);
      Row<kVectors> s{}, q{};
      for (int64_t r = r0; r < r1; ++r) {
        const Row<kVectors> row = Row<kVectors>::of(t + r * channels);
        for (int i = 0; i < kVectors; ++i) {
          const Floats d = row.v[i] - pivot.v[i];
          s.v[i] += d;
          q.v[i] += d * d;
        }
      }
      add_block_sums(s, q, channels, partial, sum, square);
    }
    return;
  }
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

VECTOR_CLONES void moments(const float* t, int64_t rows, int64_t channels, double* sum,
                           double* square, float* partial) {
  BY_CHANNELS(channels, moments_of<kVectors>(t, rows, channels, sum, square, partial))
}

// y = max(0, t * a + b) per channel, into float32 or (bf16 set) bfloat16.
template <int kVectors>
ALWAYS_INLINE void scale_shift_relu_of(const float* t, int64_t rows, int64_t channels,
                                       const float* a, const float* b, float* y,
                                       uint16_t* y_bf16) {
  if constexpr (kVectors > 0) {
    const Row<kVectors> va = Row<kVectors>::of(a), vb = Row<kVectors>::of(b);
    for (int64_t r = 0; r < rows; ++r) {
      const Row<kVectors> in = Row<kVectors>::of(t + r * channels);
      for (int i = 0; i < kVectors; ++i) {
        const Floats out = relu(in.v[i] * va.v[i] + vb.v[i]);
        if (y_bf16 != nullptr) {
          store_bf16(y_bf16 + r * channels + i * kLanes, out);
        } else {
          store(y + r * channels + i * kLanes, out);
        }
      }
    }
    return;
  }
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

VECTOR_CLONES void scale_shift_relu(const float* t, int64_t rows, int64_t channels,
                                    const float* a, const float* b, float* y,
                                    uint16_t* y_bf16) {
  BY_CHANNELS(channels, scale_shift_relu_of<kVectors>(t, rows, channels, a, b, y, y_bf16))
}

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
template <int kVectors>
ALWAYS_INLINE void block_tail_of(const float* t, int64_t rows, int64_t channels,
                                 const float* a, const float* b, const float* x,
                                 const ShortcutMap& map, const float* t3, const float* a3,
                                 const float* b3, float* y) {
  if constexpr (kVectors > 0) {
    if (map.kind != kOptionA) {
      using R = Row<kVectors>;
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
        for (int i = 0; i < kVectors; ++i) out.v[i] = relu(out.v[i]);
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
  BY_CHANNELS(channels, block_tail_of<kVectors>(t, rows, channels, a, b, x, map, t3, a3, b3, y))
}

// How a BN's output gradient reaches it: through a ReLU whose output is kept (the block's
// output y, mask y > 0), through a ReLU whose input is recomputed (t * a + b > 0, exactly
// as the forward pass computed it), or unmasked (a projection shortcut's BN, whose output
// gradient is the block's, already masked).
enum class Mask { kOutput, kRecompute, kNone };

// A BN's backward, first pass: g_in through the mask into g (the same memory, or not),
// and per channel the sums of g and of g * (t - mean).
template <int kVectors>
ALWAYS_INLINE void masked_sums_of(const float* g_in, float* g, const float* t, Mask kind,
                                  const float* output, const float* a, const float* b,
                                  const float* mean, int64_t rows, int64_t channels,
                                  double* sum_g, double* sum_gd, float* partial) {
  if constexpr (kVectors > 0) {
    using R = Row<kVectors>;
    const Floats zero = {};
    const R vm = R::of(mean);
    R va{}, vb{};
    if (kind == Mask::kRecompute) va = R::of(a), vb = R::of(b);
    for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
      const int64_t r1 = std::min(rows, r0 + kRowBlock);
      R s{}, q{};
      for (int64_t r = r0; r < r1; ++r) {
        R gr = R::of(g_in + r * channels);  // all loaded before g's row is written
        const R tr = R::of(t + r * channels);
        if (kind == Mask::kOutput) {
          const R mr = R::of(output + r * channels);
          for (int i = 0; i < kVectors; ++i) gr.v[i] = mr.v[i] > zero ? gr.v[i] : zero;
        } else if (kind == Mask::kRecompute) {
          for (int i = 0; i < kVectors; ++i) {
            gr.v[i] = tr.v[i] * va.v[i] + vb.v[i] > zero ? gr.v[i] : zero;
          }
        }
        if (kind != Mask::kNone || g != g_in) gr.store_to(g + r * channels);
        for (int i = 0; i < kVectors; ++i) {
          s.v[i] += gr.v[i];
          q.v[i] += gr.v[i] * (tr.v[i] - vm.v[i]);
        }
      }
      add_block_sums(s, q, channels, partial, sum_g, sum_gd);
    }
    return;
  }
  float* s = partial;
  float* q = partial + channels;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t c = 0; c < channels; ++c) s[c] = q[c] = 0.0f;
    for (int64_t r = r0; r < r1; ++r) {
      const float* gi = g_in + r * channels;
      float* gr = g + r * channels;
      const float* tr = t + r * channels;
      if (kind == Mask::kOutput) {
        const float* mr = output + r * channels;
        for (int64_t c = 0; c < channels; ++c) gr[c] = mr[c] > 0.0f ? gi[c] : 0.0f;
      } else if (kind == Mask::kRecompute) {
        for (int64_t c = 0; c < channels; ++c) gr[c] = tr[c] * a[c] + b[c] > 0.0f ? gi[c] : 0.0f;
      } else if (gr != gi) {
        for (int64_t c = 0; c < channels; ++c) gr[c] = gi[c];
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

VECTOR_CLONES void masked_sums(const float* g_in, float* g, const float* t, Mask kind,
                               const float* output, const float* a, const float* b,
                               const float* mean, int64_t rows, int64_t channels,
                               double* sum_g, double* sum_gd, float* partial) {
  BY_CHANNELS(channels, masked_sums_of<kVectors>(g_in, g, t, kind, output, a, b, mean, rows,
                                                 channels, sum_g, sum_gd, partial))
}

// Second pass: grad_t = k * g + slope * t + offset per channel (the BN input gradient,
// file comment of BlockBackward), into float32 or bfloat16.
template <int kVectors>
ALWAYS_INLINE void bn_input_grad_of(const float* g, const float* t, int64_t rows,
                                    int64_t channels, const float* k, const float* slope,
                                    const float* offset, float* out, uint16_t* out_bf16) {
  if constexpr (kVectors > 0) {
    using R = Row<kVectors>;
    const R vk = R::of(k), vs = R::of(slope), vo = R::of(offset);
    for (int64_t r = 0; r < rows; ++r) {
      const R gr = R::of(g + r * channels), tr = R::of(t + r * channels);
      for (int i = 0; i < kVectors; ++i) {
        const Floats o = vk.v[i] * gr.v[i] + vs.v[i] * tr.v[i] + vo.v[i];
        if (out_bf16 != nullptr) {
          store_bf16(out_bf16 + r * channels + i * kLanes, o);
        } else {
          store(out + r * channels + i * kLanes, o);
        }
      }
    }
    return;
  }
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

VECTOR_CLONES void bn_input_grad(const float* g, const float* t, int64_t rows,
                                 int64_t channels, const float* k, const float* slope,
                                 const float* offset, float* out, uint16_t* out_bf16) {
  BY_CHANNELS(channels, bn_input_grad_of<kVectors>(g, t, rows, channels, k, slope, offset,
                                                   out, out_bf16))
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

// Rows of the saved statistics tensor (kStats x channels); the projection's last two.
enum StatRow { kMean1, kInvStd1, kA1, kB1, kMean2, kInvStd2, kMean3, kInvStd3, kStats };

void run_forward(const Geometry& g, const memory& src, const paddle::Tensor& weight,
                 float* dst) {
  conv::forward(g).execute(g, src, weight.data<float>(), dst);
}

void run_backward_data(const Geometry& g, const memory& diff_dst, const paddle::Tensor& weight,
                       float* diff_src) {
  conv::backward_data(g).execute(g, diff_dst, weight.data<float>(), diff_src);
}

void run_backward_weights(const Geometry& g, const memory& src, const memory& diff_dst,
                          float* diff_weights) {
  conv::backward_weights(g).execute(g, src, diff_dst, diff_weights);
}

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

// A batch normalization's tensors, as the block's inputs hand them over.
struct Norm {
  const paddle::Tensor& gamma;
  const paddle::Tensor& beta;
  const paddle::Tensor& running_mean;
  const paddle::Tensor& running_var;
};

struct Projection {
  const paddle::Tensor& weight;
  Norm norm;
};

struct Hyper {
  int stride, shortcut, pad_before;
  float epsilon, momentum;
  bool bf16;
};

void check_norm(const Norm& n) {
  for (const auto* t : {&n.gamma, &n.beta, &n.running_mean, &n.running_var}) {
    check_float(*t, "a batch normalization's parameter or statistic");
  }
}

// t's statistics (rows `mean`, `inv_std` of the stats), the running update, and bn(t) as
// t * a + b.
void normalize_stats(const float* t, Rows shape, const Norm& n, const Hyper& h, float* mean,
                     float* inv_std, float* a, float* b, float* partial) {
  batch_statistics(t, shape, h.epsilon, h.momentum, mean, inv_std, data_of(n.running_mean),
                   data_of(n.running_var), partial);
  scale_shift(n.gamma.data<float>(), n.beta.data<float>(), mean, inv_std, shape.channels, a, b);
}

std::vector<paddle::Tensor> forward_block(const paddle::Tensor& x, const paddle::Tensor& w1,
                                          const Norm& n1, const paddle::Tensor& w2,
                                          const Norm& n2, const Projection* projection,
                                          const Hyper& h) {
  check_float(x, "the input");
  check_float(w1, "conv1's weight");
  check_float(w2, "conv2's weight");
  check_norm(n1);
  check_norm(n2);
  if (projection != nullptr) {
    check_float(projection->weight, "the projection's weight");
    check_norm(projection->norm);
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
  normalize_stats(t1.data<float>(), mid, n1, h, row(kMean1), row(kInvStd1), row(kA1), row(kB1),
                  partial.data());
  auto a1 = empty_of(bg.mid_shape, bf16);
  scale_shift_relu(t1.data<float>(), mid.rows, channels, row(kA1), row(kB1),
                   bf16 ? nullptr : data_of(a1), bf16 ? bf16_data(a1) : nullptr);

  auto t2 = empty(bg.mid_shape);
  run_forward(bg.conv2, conv_input(bg.conv2.src, a1, bf16), w2, data_of(t2));
  std::vector<float> a2(channels), b2(channels), a3(channels), b3(channels);
  normalize_stats(t2.data<float>(), mid, n2, h, row(kMean2), row(kInvStd2), a2.data(), b2.data(),
                  partial.data());

  paddle::Tensor t3 = empty({1});
  if (projection != nullptr) {
    t3 = empty(bg.mid_shape);
    run_forward(bg.conv3, x_mem, projection->weight, data_of(t3));
    normalize_stats(t3.data<float>(), mid, projection->norm, h, row(kMean3), row(kInvStd3),
                    a3.data(), b3.data(), partial.data());
  }
  auto y = empty(bg.mid_shape);
  block_tail(t2.data<float>(), mid.rows, channels, a2.data(), b2.data(), x.data<float>(),
             bg.shortcut, projection ? t3.data<float>() : nullptr, a3.data(), b3.data(),
             data_of(y));
  std::vector<paddle::Tensor> saved = {y, x_in, t1, a1, t2, stats};
  if (projection != nullptr) saved.push_back(t3);
  return saved;
}

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

// A BN's backward through its mask: g_in masked into g; returns the BN input's gradient
// (bf16 or float32) and its parameters' gradients.
struct NormGrads {
  paddle::Tensor input, gamma, beta;
};

NormGrads norm_backward(const float* g_in, float* g, const float* t, Mask mask,
                        const float* output, const float* a, const float* b,
                        const float* gamma, const float* mean, const float* inv_std,
                        Rows shape, const std::vector<int64_t>& nhwc, bool bf16,
                        float* partial) {
  const int64_t channels = shape.channels;
  std::vector<double> sum_g(channels, 0.0), sum_gd(channels, 0.0);
  masked_sums(g_in, g, t, mask, output, a, b, mean, shape.rows, channels, sum_g.data(),
              sum_gd.data(), partial);
  NormGrads grads{empty_of(nhwc, bf16), empty({channels}), empty({channels})};
  bn_backward(g, t, shape, gamma, mean, inv_std, sum_g.data(), sum_gd.data(),
              data_of(grads.gamma), data_of(grads.beta),
              bf16 ? nullptr : data_of(grads.input), bf16 ? bf16_data(grads.input) : nullptr);
  return grads;
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

// Training-mode batch normalization as passes over NHWC float32 rows, for the fused
// operators (basic_block.cc, norm_conv.cc): statistics, the normalize(+ReLU) pass that can
// write the next convolution's bfloat16 input, and the backward's reduction and gradient
// passes. Statistics as Paddle's BatchNorm: the batch mean and biased variance (divided by
// N*H*W), running = momentum * running + (1 - momentum) * batch, updated in place.
#include "norm_passes.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "vector_rows.h"

namespace paddle_resnet {
namespace norm {
namespace {

// Float partial sums over this many rows, then added into doubles: float accumulation
// alone loses digits over N*H*W = 65,536 rows (ResNet-20's first stage at batch 64).
constexpr int64_t kRowBlock = 64;

// Two sums per channel over `rows` rows: accumulated in float over each block of kRowBlock
// rows, then added into the double totals. `add_row(r, s, q)` adds row r's terms to the
// block's sums s and q: a Row of registers per sum in the body over whole vectors, float
// arrays of `channels` (in `partial`) in the loop over any count. Both bodies add the same
// terms in the same order (vector_rows.h).
template <int kLanes, int kVectors, typename AddRow>
ALWAYS_INLINE void block_sums(int64_t rows, int64_t channels, float* partial, double* total_s,
                              double* total_q, AddRow add_row) {
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    if constexpr (kVectors > 0) {
      Row<kLanes, kVectors> s{}, q{};
      for (int64_t r = r0; r < r1; ++r) add_row(r, s, q);
      s.store_to(partial);
      q.store_to(partial + channels);
    } else {
      for (int64_t c = 0; c < 2 * channels; ++c) partial[c] = 0.0f;
      for (int64_t r = r0; r < r1; ++r) add_row(r, partial, partial + channels);
    }
    for (int64_t c = 0; c < channels; ++c) {
      total_s[c] += partial[c];
      total_q[c] += partial[channels + c];
    }
  }
}

// Per channel of `rows` x `channels`: sum of (t - pivot) and of its square, pivot the
// first row (shifting keeps E[d^2] - E[d]^2 from cancelling where |mean| >> std).
template <int kLanes, int kVectors>
ALWAYS_INLINE void moments_of(const float* t, int64_t rows, int64_t channels, double* sum,
                              double* square, float* partial) {
  if constexpr (kVectors > 0) {
    using R = Row<kLanes, kVectors>;
    const R pivot = R::of(t);
    block_sums<kLanes, kVectors>(rows, channels, partial, sum, square,
                                 [&](int64_t r, R& s, R& q) {
      const R row = R::of(t + r * channels);
      for (int i = 0; i < kVectors; ++i) {
        const Floats<kLanes> d = row.v[i] - pivot.v[i];
        s.v[i] += d;
        q.v[i] += d * d;
      }
    });
  } else {
    const float* pivot = t;
    block_sums<kLanes, 0>(rows, channels, partial, sum, square,
                          [&](int64_t r, float* s, float* q) {
      const float* row = t + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const float d = row[c] - pivot[c];
        s[c] += d;
        q[c] += d * d;
      }
    });
  }
}

VECTOR_CLONES void moments(const float* t, int64_t rows, int64_t channels, double* sum,
                           double* square, float* partial) {
  BY_CHANNELS(channels, moments_of<kLanes, kVectors>(t, rows, channels, sum, square, partial))
}

// A BN's backward, first pass: g_in through the mask into g (the same memory, or not),
// and per channel the sums of g and of g * (t - mean).
template <int kLanes, int kVectors>
ALWAYS_INLINE void masked_sums_of(const float* g_in, float* g, const float* t, Mask kind,
                                  const float* output, const float* a, const float* b,
                                  const float* mean, int64_t rows, int64_t channels,
                                  double* sum_g, double* sum_gd, float* partial) {
  if constexpr (kVectors > 0) {
    using R = Row<kLanes, kVectors>;
    const Floats<kLanes> zero = {};
    const R vm = R::of(mean);
    R va{}, vb{};
    if (kind == Mask::kRecompute) va = R::of(a), vb = R::of(b);
    block_sums<kLanes, kVectors>(rows, channels, partial, sum_g, sum_gd,
                                 [&](int64_t r, R& s, R& q) {
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
    });
  } else {
    block_sums<kLanes, 0>(rows, channels, partial, sum_g, sum_gd,
                          [&](int64_t r, float* s, float* q) {
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
    });
  }
}

VECTOR_CLONES void masked_sums(const float* g_in, float* g, const float* t, Mask kind,
                               const float* output, const float* a, const float* b,
                               const float* mean, int64_t rows, int64_t channels,
                               double* sum_g, double* sum_gd, float* partial) {
  BY_CHANNELS(channels, masked_sums_of<kLanes, kVectors>(g_in, g, t, kind, output, a, b, mean,
                                                         rows, channels, sum_g, sum_gd,
                                                         partial))
}

// Second pass: grad_t = k * g + slope * t + offset per channel (the BN input gradient,
// bn_backward's comment), plus the addend's row if there is one, into float32 or bfloat16.
template <int kLanes, int kVectors>
ALWAYS_INLINE void bn_input_grad_of(const float* g, const float* t, int64_t rows,
                                    int64_t channels, const float* k, const float* slope,
                                    const float* offset, Addend add, float* out,
                                    uint16_t* out_bf16) {
  if constexpr (kVectors > 0) {
    using R = Row<kLanes, kVectors>;
    const R vk = R::of(k), vs = R::of(slope), vo = R::of(offset);
    for (int64_t r = 0; r < rows; ++r) {
      const R gr = R::of(g + r * channels), tr = R::of(t + r * channels);
      for (int i = 0; i < kVectors; ++i) {
        Floats<kLanes> o = vk.v[i] * gr.v[i] + vs.v[i] * tr.v[i] + vo.v[i];
        if (add.data != nullptr) o += load<kLanes>(add.data + r * add.stride + i * kLanes);
        store_either<kLanes>(out, out_bf16, r * channels + i * kLanes, o);
      }
    }
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* gr = g + r * channels;
    const float* tr = t + r * channels;
    if (out_bf16 != nullptr) {
      uint16_t* o = out_bf16 + r * channels;
      for (int64_t c = 0; c < channels; ++c) {
        o[c] = to_bf16(k[c] * gr[c] + slope[c] * tr[c] + offset[c]);
      }
    } else if (add.data != nullptr) {
      float* o = out + r * channels;
      const float* ar = add.data + r * add.stride;
      for (int64_t c = 0; c < channels; ++c) {
        o[c] = k[c] * gr[c] + slope[c] * tr[c] + offset[c] + ar[c];
      }
    } else {
      float* o = out + r * channels;
      for (int64_t c = 0; c < channels; ++c) o[c] = k[c] * gr[c] + slope[c] * tr[c] + offset[c];
    }
  }
}

VECTOR_CLONES void bn_input_grad(const float* g, const float* t, int64_t rows,
                                 int64_t channels, const float* k, const float* slope,
                                 const float* offset, Addend add, float* out,
                                 uint16_t* out_bf16) {
  BY_CHANNELS(channels, bn_input_grad_of<kLanes, kVectors>(g, t, rows, channels, k, slope,
                                                           offset, add, out, out_bf16))
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

// One BN's input gradient from the masked output gradient g (after masked_sums):
//   grad_t = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat)),  xhat = (t - mean) * inv_std
// rewritten per channel as k * g + slope * t + offset. Also fills grad_gamma = sum(g * xhat)
// and grad_beta = sum(g).
void bn_backward(const float* g, const float* t, Rows shape, const float* gamma,
                 const float* mean, const float* inv_std, const double* sum_g,
                 const double* sum_gd, float* grad_gamma, float* grad_beta, Addend add,
                 float* out, uint16_t* out_bf16) {
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
  bn_input_grad(g, t, shape.rows, channels, k.data(), slope.data(), offset.data(), add, out,
                out_bf16);
}

}  // namespace

template <int kLanes>
ALWAYS_INLINE void round_to_bf16_of(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) store_bf16<kLanes>(y + i, load<kLanes>(x + i));
  for (; i < n; ++i) y[i] = to_bf16(x[i]);
}

VECTOR_CLONES void round_to_bf16(const float* x, uint16_t* y, int64_t n) {
  if (wide_vectors()) {
    round_to_bf16_of<16>(x, y, n);
  } else {
    round_to_bf16_of<8>(x, y, n);
  }
}

// y = max(0, t * a + b) per channel, into float32 or (bf16 set) bfloat16.
template <int kLanes, int kVectors>
ALWAYS_INLINE void scale_shift_relu_of(const float* t, int64_t rows, int64_t channels,
                                       const float* a, const float* b, float* y,
                                       uint16_t* y_bf16) {
  if constexpr (kVectors > 0) {
    using R = Row<kLanes, kVectors>;
    const R va = R::of(a), vb = R::of(b);
    for (int64_t r = 0; r < rows; ++r) {
      const R in = R::of(t + r * channels);
      for (int i = 0; i < kVectors; ++i) {
        store_either<kLanes>(y, y_bf16, r * channels + i * kLanes,
                             relu<kLanes>(in.v[i] * va.v[i] + vb.v[i]));
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
  BY_CHANNELS(channels, scale_shift_relu_of<kLanes, kVectors>(t, rows, channels, a, b, y, y_bf16))
}

VECTOR_CLONES void scale_shift_relu_pool(const float* t, const std::vector<int64_t>& nhwc,
                                         const float* a, const float* b, float* y,
                                         uint16_t* y_bf16) {
  const int64_t n_count = nhwc[0], h_in = nhwc[1], w_in = nhwc[2], channels = nhwc[3];
  const int64_t h_out = h_in / 2, w_out = w_in / 2;
  std::vector<float> window(channels);
  for (int64_t n = 0; n < n_count; ++n) {
    for (int64_t h = 0; h < h_out; ++h) {
      for (int64_t w = 0; w < w_out; ++w) {
        // the window's four pixels in Paddle's order: row by row, then divided by 4
        const float* p00 = t + ((n * h_in + 2 * h) * w_in + 2 * w) * channels;
        const float* p01 = p00 + channels;
        const float* p10 = p00 + w_in * channels;
        const float* p11 = p10 + channels;
        for (int64_t c = 0; c < channels; ++c) {
          window[c] = (std::max(p00[c] * a[c] + b[c], 0.0f) + std::max(p01[c] * a[c] + b[c], 0.0f)
                       + std::max(p10[c] * a[c] + b[c], 0.0f)
                       + std::max(p11[c] * a[c] + b[c], 0.0f)) / 4.0f;
        }
        const int64_t out = ((n * h_out + h) * w_out + w) * channels;
        if (y_bf16 != nullptr) {
          for (int64_t c = 0; c < channels; ++c) y_bf16[out + c] = to_bf16(window[c]);
        } else {
          std::memcpy(y + out, window.data(), channels * sizeof(float));
        }
      }
    }
  }
}

void check_norm(const Norm& n, const char* op) {
  for (const auto* t : {&n.gamma, &n.beta, &n.running_mean, &n.running_var}) {
    check_input(*t, op, "a batch normalization's parameter or statistic");
  }
}

void normalize_stats(const float* t, Rows shape, const Norm& n, float epsilon, float momentum,
                     float* mean, float* inv_std, float* a, float* b, float* partial) {
  batch_statistics(t, shape, epsilon, momentum, mean, inv_std, data_of(n.running_mean),
                   data_of(n.running_var), partial);
  scale_shift(n.gamma.data<float>(), n.beta.data<float>(), mean, inv_std, shape.channels, a, b);
}

NormGrads norm_backward(const float* g_in, float* g, const float* t, Mask mask,
                        const float* output, const float* a, const float* b,
                        const float* gamma, const float* mean, const float* inv_std,
                        Rows shape, const std::vector<int64_t>& nhwc, bool bf16,
                        float* partial, Addend add) {
  PD_CHECK(add.data == nullptr || !bf16, "norm_backward: an addend needs a float32 gradient");
  const int64_t channels = shape.channels;
  std::vector<double> sum_g(channels, 0.0), sum_gd(channels, 0.0);
  masked_sums(g_in, g, t, mask, output, a, b, mean, shape.rows, channels, sum_g.data(),
              sum_gd.data(), partial);
  NormGrads grads{empty_of(nhwc, bf16), empty({channels}), empty({channels})};
  bn_backward(g, t, shape, gamma, mean, inv_std, sum_g.data(), sum_gd.data(),
              data_of(grads.gamma), data_of(grads.beta), add,
              bf16 ? nullptr : data_of(grads.input), bf16 ? bf16_data(grads.input) : nullptr);
  return grads;
}

}  // namespace norm
}  // namespace paddle_resnet

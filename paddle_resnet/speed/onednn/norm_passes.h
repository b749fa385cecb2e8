// Batch normalization as passes over NHWC float32 rows, shared by the fused operators
// (basic_block.cc: a residual block; norm_conv.cc: BN-ReLU-convolution). Each pass reads
// and writes whole rows of channels; where a convolution follows, the normalize and
// gradient passes write its bfloat16 input directly, so no separate rounding pass remains.
#ifndef PADDLE_RESNET_ONEDNN_NORM_PASSES_H
#define PADDLE_RESNET_ONEDNN_NORM_PASSES_H

#include <cstdint>
#include <vector>

#include "common.h"

namespace paddle_resnet {
namespace norm {

// Rows (N*H*W) and channels of an NHWC tensor.
struct Rows {
  int64_t rows, channels;
};
inline Rows rows_of(const std::vector<int64_t>& nhwc) {
  return {nhwc[0] * nhwc[1] * nhwc[2], nhwc[3]};
}

inline paddle::Tensor empty_of(const std::vector<int64_t>& shape, bool bf16) {
  return paddle::empty(shape, bf16 ? paddle::DataType::BFLOAT16 : paddle::DataType::FLOAT32,
                       paddle::CPUPlace());
}

inline uint16_t* bf16_data(const paddle::Tensor& t) {
  return static_cast<uint16_t*>(const_cast<void*>(t.data()));
}

// A batch normalization's tensors, as an operator's inputs hand them over.
struct Norm {
  const paddle::Tensor& gamma;
  const paddle::Tensor& beta;
  const paddle::Tensor& running_mean;
  const paddle::Tensor& running_var;
};

// Fails unless every tensor of `n` is float32 on the CPU, naming the operator `op`.
void check_norm(const Norm& n, const char* op);

// y = x rounded to bfloat16 (to nearest even, as oneDNN's reorders round), n values.
void round_to_bf16(const float* x, uint16_t* y, int64_t n);

// t's batch statistics (`mean`, `inv_std` per channel), the running update of n's buffers
// in place, and bn(t) as t * a + b per channel. `partial` holds 2 x channels floats.
void normalize_stats(const float* t, Rows shape, const Norm& n, float epsilon, float momentum,
                     float* mean, float* inv_std, float* a, float* b, float* partial);

// y = max(0, t * a + b) per channel, into float32 y or (y_bf16 not null) bfloat16 y_bf16.
void scale_shift_relu(const float* t, int64_t rows, int64_t channels, const float* a,
                      const float* b, float* y, uint16_t* y_bf16);

// y = the 2x2 average pooling (stride 2, floor) of max(0, t * a + b), t NHWC shaped `nhwc`,
// into float32 y or (y_bf16 not null) bfloat16 y_bf16.
void scale_shift_relu_pool(const float* t, const std::vector<int64_t>& nhwc, const float* a,
                           const float* b, float* y, uint16_t* y_bf16);

// How a BN's output gradient reaches it: through a ReLU whose output is kept (the block's
// output y, mask y > 0), through a ReLU whose input is recomputed (t * a + b > 0, exactly
// as the forward pass computed it), or unmasked (a projection shortcut's BN, whose output
// gradient is the block's, already masked).
enum class Mask { kOutput, kRecompute, kNone };

struct NormGrads {
  paddle::Tensor input, gamma, beta;
};

// A float32 gradient that adds to a BN input's (its other consumers' share), one row of
// the input's channels every `stride` floats; none where `data` is null.
struct Addend {
  const float* data = nullptr;
  int64_t stride = 0;
};

// A BN's backward through its mask: g_in masked into g (the same memory, or not); returns
// the BN input's gradient (bf16 or float32, shaped `nhwc`; float32 where `add` adds to it)
// and its parameters' gradients. `output` is the kept ReLU output (Mask::kOutput), `a`, `b`
// the forward's scale and shift (Mask::kRecompute).
NormGrads norm_backward(const float* g_in, float* g, const float* t, Mask mask,
                        const float* output, const float* a, const float* b,
                        const float* gamma, const float* mean, const float* inv_std,
                        Rows shape, const std::vector<int64_t>& nhwc, bool bf16,
                        float* partial, Addend add = {});

}  // namespace norm
}  // namespace paddle_resnet

#endif

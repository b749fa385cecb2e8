// What the fused operators' passes over NHWC rows share: bfloat16 rounding, 16 or 8 floats
// as one vector value (GCC's vector extension) and a row of channels as registers, and the
// macros that compile a pass for several instruction sets and pick a body by channels.
#ifndef PADDLE_RESNET_ONEDNN_VECTOR_ROWS_H
#define PADDLE_RESNET_ONEDNN_VECTOR_ROWS_H

#include <cstdint>
#include <cstring>

// With oneDNN's ISA capped (ONEDNN_MAX_CPU_ISA, onednn_build.vector_target), the passes
// are capped alike: PADDLE_RESNET_VECTORS_AVX2 leaves out the AVX-512 clone,
// PADDLE_RESNET_VECTORS_BASELINE every clone, so a capped run computes as on such a CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(PADDLE_RESNET_VECTORS_BASELINE)
#if defined(PADDLE_RESNET_VECTORS_AVX2)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#else
#define VECTOR_CLONES
#endif

// The passes (norm_passes.cc, basic_block.cc) have two bodies: a loop over any channel
// count, and one over 16, 32 or 64 channels (ResNet-20's stages) as rows of vectors whose
// per-channel sums stay in registers. With the count known only at run time GCC keeps
// those sums in memory and stores them every row, and the row loop waits on that
// (docs/performance.md).
// The two compute the same operations in the same order, so their results are equal bit
// for bit (with -ffp-contract=off, onednn_build.py). Wider rows (ResNet-18's 128-512
// channels) keep the loop: there a row is long enough that the sums' stores do not stall it,
// and the vector body in runs of 64 channels, tried, made ResNet-18's passes slower (5.5% ->
// 7.1% of the step's samples, docs/performance.md).
//
// A vector is 16 floats where the CPU has AVX-512 and 8 elsewhere, picked per call
// (`wide_vectors`): GCC 12 compiles a comparison or `?:` on 16-float vectors to scalar
// code for AVX2, whose registers hold 8 (a lane-by-lane `vcmpltss` per float), and that made
// the AVX2 clone's passes several times slower than the AVX-512 one's (docs/performance.md).
// The width changes no result: every lane computes the same operations either way.
#define ALWAYS_INLINE inline __attribute__((always_inline))
// The call is the macros' last argument(s): its template arguments hold commas.
#define BY_WIDTH(lanes, channels, ...)                                                   \
  switch (channels) {                                                                    \
    case 16: { constexpr int kLanes = lanes, kVectors = 16 / lanes; __VA_ARGS__; break; } \
    case 32: { constexpr int kLanes = lanes, kVectors = 32 / lanes; __VA_ARGS__; break; } \
    case 64: { constexpr int kLanes = lanes, kVectors = 64 / lanes; __VA_ARGS__; break; } \
    default: { constexpr int kLanes = lanes, kVectors = 0; __VA_ARGS__; break; }          \
  }
#define BY_CHANNELS(channels, ...)                \
  if (paddle_resnet::wide_vectors()) {            \
    BY_WIDTH(16, channels, __VA_ARGS__)           \
  } else {                                        \
    BY_WIDTH(8, channels, __VA_ARGS__)            \
  }

namespace paddle_resnet {

// Whether the passes take 16-float vectors (AVX-512) rather than 8.
inline bool wide_vectors() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(PADDLE_RESNET_VECTORS_AVX2) && !defined(PADDLE_RESNET_VECTORS_BASELINE)
  __builtin_cpu_init();  // idempotent; a shared library's constructors may run before libgcc's
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

// Round to nearest even, as oneDNN's reorders round float32 to bfloat16.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// kLanes floats as one value (GCC's vector extension): one AVX-512 register or two AVX2 ones
// for 16, one AVX2 register for 8, as each clone compiles it.
template <int kLanes>
struct VectorTypes;
template <>
struct VectorTypes<16> {
  typedef float Floats __attribute__((vector_size(64)));
  typedef uint32_t Words __attribute__((vector_size(64)));
  typedef uint16_t Halves __attribute__((vector_size(32)));
};
template <>
struct VectorTypes<8> {
  typedef float Floats __attribute__((vector_size(32)));
  typedef uint32_t Words __attribute__((vector_size(32)));
  typedef uint16_t Halves __attribute__((vector_size(16)));
};
template <int kLanes>
using Floats = typename VectorTypes<kLanes>::Floats;

template <int kLanes>
ALWAYS_INLINE Floats<kLanes> load(const float* p) {
  Floats<kLanes> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <int kLanes>
ALWAYS_INLINE void store(float* p, Floats<kLanes> v) {
  std::memcpy(p, &v, sizeof(v));
}

// to_bf16 of each lane.
template <int kLanes>
ALWAYS_INLINE void store_bf16(uint16_t* p, Floats<kLanes> v) {
  using Words = typename VectorTypes<kLanes>::Words;
  using Halves = typename VectorTypes<kLanes>::Halves;
  Words u;
  std::memcpy(&u, &v, sizeof(u));
  const Words rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const Words quiet_nan = (u >> 16) | 0x40u;
  const Halves h = __builtin_convertvector((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded,
                                           Halves);
  std::memcpy(p, &h, sizeof(h));
}

// v at element `at` of bfloat16 `bf16` where it is not null, else of float32 `f32`.
template <int kLanes>
ALWAYS_INLINE void store_either(float* f32, uint16_t* bf16, int64_t at, Floats<kLanes> v) {
  if (bf16 != nullptr) {
    store_bf16<kLanes>(bf16 + at, v);
  } else {
    store<kLanes>(f32 + at, v);
  }
}

// std::max(v, 0.0f) of each lane, -0.0 and NaN included.
template <int kLanes>
ALWAYS_INLINE Floats<kLanes> relu(Floats<kLanes> v) {
  const Floats<kLanes> zero = {};
  return v < zero ? zero : v;
}

// One row of kVectors vectors of kLanes floats: its channels' values as registers.
template <int kLanes, int kVectors>
struct Row {
  Floats<kLanes> v[kVectors];

  static ALWAYS_INLINE Row of(const float* p) {
    Row row;
    for (int i = 0; i < kVectors; ++i) row.v[i] = load<kLanes>(p + i * kLanes);
    return row;
  }
  ALWAYS_INLINE void store_to(float* p) const {
    for (int i = 0; i < kVectors; ++i) store<kLanes>(p + i * kLanes, v[i]);
  }
};

}  // namespace paddle_resnet

#endif

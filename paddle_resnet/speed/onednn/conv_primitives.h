// oneDNN convolution primitives, made once per shape and shared by the per-layer
// operators (conv.cc) and the fused residual block (basic_block.cc).
//
// Layouts: activations and their gradients are NHWC in Paddle's memory (oneDNN's NHWC
// kernels read and write them in place); weights and their gradient stay OIHW, Paddle's
// layout and the checkpoints', and are reordered to and from the blocked layout oneDNN
// picks (`format_tag::any`). A plain NCHW descriptor sends oneDNN to its slow GEMM path.
//
// bf16: the primitives read bfloat16 activations, output gradients and weights and write
// float32 outputs and gradients, accumulating in float32. oneDNN's fpmath mode, which
// would round inside f32 primitives, leaves these convolutions in f32 on CPUs without AMX,
// so the rounding is done by the callers (ActivationIn, or the block's own kernels).
//
// Scratchpad: every primitive is made with a user-mode scratchpad and runs on one buffer
// the library keeps (`Scratchpad`), as PyTorch runs its own. In oneDNN's default library
// mode, a build with concurrent execution (Paddle's) allocates each execution's
// scratchpad afresh. Where glibc hands freed memory back to the kernel every step (its
// defaults, PADDLE_RESNET_KEEP_MEMORY=0, speed/malloc.py) that allocation faults:
// ResNet-20's 16-channel input gradient went from 2.97 to 2.19 ms in one ONEDNN_VERBOSE
// profile, 2026-12-03.
#ifndef PADDLE_RESNET_ONEDNN_CONV_PRIMITIVES_H
#define PADDLE_RESNET_ONEDNN_CONV_PRIMITIVES_H

#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"

namespace paddle_resnet {
namespace conv {

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
inline Geometry geometry(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
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

// The type the primitives read their inputs in (file comment).
inline memory::data_type input_type(const Geometry& g) { return g.bf16 ? kBF16 : kF32; }

inline memory::desc activation(const Dims& dims, memory::data_type type = kF32) {
  return memory::desc(dims, type, Tag::nhwc);
}
inline memory::desc oihw(const Dims& dims) { return memory::desc(dims, kF32, Tag::oihw); }
inline memory::desc any_weights(const Dims& dims, memory::data_type type = kF32) {
  return memory::desc(dims, type, Tag::any);
}

// An NHWC activation of `type` in memory a caller owns (Paddle's, or a rounded copy).
inline memory bind_activation(const Dims& dims, memory::data_type type, const void* data) {
  return memory(activation(dims, type), cpu_engine(), const_cast<void*>(data));
}

inline dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// The one scratchpad buffer every primitive runs on (file comment): the callers are one
// thread executing one primitive at a time, so a buffer grown to the largest request and
// kept stays faulted in.
class Scratchpad {
 public:
  memory bind(const memory::desc& desc) {
    const size_t size = desc.get_size();
    if (size > capacity_) {
      constexpr size_t kPage = 4096;
      capacity_ = (size + kPage - 1) / kPage * kPage;
      buffer_.reset(static_cast<char*>(std::aligned_alloc(kPage, capacity_)));
      PD_CHECK(buffer_ != nullptr, "oneDNN scratchpad: cannot allocate ", capacity_,
               " bytes");
    }
    return memory(desc, cpu_engine(), buffer_.get());
  }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, Free> buffer_;
  size_t capacity_ = 0;
};

inline Scratchpad& scratchpad() {
  static Scratchpad pad;
  return pad;
}

// Runs a primitive made with `user_scratchpad()` on the shared scratchpad, to completion.
inline void run(const dnnl::primitive& primitive, const memory::desc& scratchpad_desc,
                std::unordered_map<int, memory> args) {
  args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad().bind(scratchpad_desc));
  primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
}

inline dnnl::convolution_forward::primitive_desc forward_desc(const Geometry& g) {
  return dnnl::convolution_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
      activation(g.src, input_type(g)), any_weights(g.weights, input_type(g)),
      activation(g.dst), g.strides, g.pad_l, g.pad_r, user_scratchpad());
}

// A float32 NHWC activation (or its gradient) as a primitive reads it: Paddle's memory
// itself, or for bf16 a rounded copy in a buffer of its own, made on first use (the
// fused block hands its primitives bf16 memory directly and never makes one).
struct ActivationIn {
  memory::data_type type = kF32;
  memory rounded;
  dnnl::reorder to_rounded;

  ActivationIn() = default;
  explicit ActivationIn(memory::data_type t) : type(t) {}

  memory bind(const Dims& dims, const float* data) {
    memory plain = bind_activation(dims, kF32, data);
    if (type == kF32) return plain;
    if (!rounded) {
      rounded = memory(activation(dims, type), cpu_engine());
      to_rounded = dnnl::reorder(dnnl::reorder::primitive_desc(
          cpu_engine(), activation(dims), cpu_engine(), activation(dims, type)));
    }
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

// The weight gradient as a primitive writes it, and its way back to OIHW.
struct WeightsOut {
  bool reorder = false;
  memory blocked;
  dnnl::reorder to_plain;

  WeightsOut() = default;
  WeightsOut(const memory::desc& chosen, const Dims& dims) {
    reorder = chosen != oihw(dims);
    if (reorder) {
      blocked = memory(chosen, cpu_engine());
      to_plain = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), chosen,
                                                             cpu_engine(), oihw(dims)));
    }
  }

  // Where the primitive writes; call `finish` after it ran.
  memory target(const Dims& dims, float* data) {
    return reorder ? blocked : memory(oihw(dims), cpu_engine(), data);
  }
  void finish(const Dims& dims, float* data) {
    if (!reorder) return;
    memory plain(oihw(dims), cpu_engine(), data);
    to_plain.execute(cpu_stream(), blocked, plain);
  }
};

// Each primitive with what it reads and writes through; `execute` runs it to completion
// on inputs already in the type it reads (bound by the caller: `src`/`diff_dst` here, or
// the fused block's own bf16 memory) with OIHW float32 weights, into float32 NHWC memory.
struct Forward {
  dnnl::convolution_forward primitive;
  memory::desc scratchpad;
  WeightsIn weights;
  ActivationIn src;

  void execute(const Geometry& g, const memory& input, const float* weight, float* dst) {
    run(primitive, scratchpad,
        {{DNNL_ARG_SRC, input},
         {DNNL_ARG_WEIGHTS, weights.bind(g.weights, weight)},
         {DNNL_ARG_DST, bind_activation(g.dst, kF32, dst)}});
  }
};

struct BackwardData {
  dnnl::convolution_backward_data primitive;
  memory::desc scratchpad;
  WeightsIn weights;
  ActivationIn diff_dst;

  void execute(const Geometry& g, const memory& output_grad, const float* weight,
               float* diff_src) {
    run(primitive, scratchpad,
        {{DNNL_ARG_DIFF_DST, output_grad},
         {DNNL_ARG_WEIGHTS, weights.bind(g.weights, weight)},
         {DNNL_ARG_DIFF_SRC, bind_activation(g.src, kF32, diff_src)}});
  }
};

struct BackwardWeights {
  dnnl::convolution_backward_weights primitive;
  memory::desc scratchpad;
  ActivationIn src, diff_dst;
  WeightsOut diff_weights;

  void execute(const Geometry& g, const memory& input, const memory& output_grad,
               float* weight_grad) {
    run(primitive, scratchpad,
        {{DNNL_ARG_SRC, input},
         {DNNL_ARG_DIFF_DST, output_grad},
         {DNNL_ARG_DIFF_WEIGHTS, diff_weights.target(g.weights, weight_grad)}});
    diff_weights.finish(g.weights, weight_grad);
    cpu_stream().wait();
  }
};

inline Forward* make_forward(const Geometry& g) {
  auto pd = forward_desc(g);
  return new Forward{dnnl::convolution_forward(pd), pd.scratchpad_desc(),
                     WeightsIn(pd.weights_desc(), g.weights), ActivationIn(input_type(g))};
}

inline BackwardData* make_backward_data(const Geometry& g) {
  auto pd = dnnl::convolution_backward_data::primitive_desc(
      cpu_engine(), dnnl::algorithm::convolution_direct, activation(g.src),
      any_weights(g.weights, input_type(g)), activation(g.dst, input_type(g)), g.strides,
      g.pad_l, g.pad_r, forward_desc(g), user_scratchpad());
  return new BackwardData{dnnl::convolution_backward_data(pd), pd.scratchpad_desc(),
                          WeightsIn(pd.weights_desc(), g.weights),
                          ActivationIn(input_type(g))};
}

inline BackwardWeights* make_backward_weights(const Geometry& g) {
  auto pd = dnnl::convolution_backward_weights::primitive_desc(
      cpu_engine(), dnnl::algorithm::convolution_direct, activation(g.src, input_type(g)),
      any_weights(g.weights), activation(g.dst, input_type(g)), g.strides, g.pad_l, g.pad_r,
      forward_desc(g), user_scratchpad());
  return new BackwardWeights{dnnl::convolution_backward_weights(pd), pd.scratchpad_desc(),
                             ActivationIn(input_type(g)), ActivationIn(input_type(g)),
                             WeightsOut(pd.diff_weights_desc(), g.weights)};
}

// One cache per primitive kind for the whole library (inline: one instance across files).
inline Forward& forward(const Geometry& g) {
  static std::unordered_map<std::string, std::unique_ptr<Forward>> cache;
  return cached(&cache, g.key("fwd"), make_forward, g);
}

inline BackwardData& backward_data(const Geometry& g) {
  static std::unordered_map<std::string, std::unique_ptr<BackwardData>> cache;
  return cached(&cache, g.key("bwd_data"), make_backward_data, g);
}

inline BackwardWeights& backward_weights(const Geometry& g) {
  static std::unordered_map<std::string, std::unique_ptr<BackwardWeights>> cache;
  return cached(&cache, g.key("bwd_weights"), make_backward_weights, g);
}

// The same, for the fused operators: inputs as Paddle tensors or bound memory.
// A convolution input as a primitive reads it: the bf16 tensor, or the float32 one.
inline memory conv_input(const Dims& dims, const paddle::Tensor& t, bool bf16) {
  return bind_activation(dims, bf16 ? kBF16 : kF32, t.data());
}

inline void run_forward(const Geometry& g, const memory& src, const paddle::Tensor& weight,
                        float* dst) {
  forward(g).execute(g, src, weight.data<float>(), dst);
}

inline void run_backward_data(const Geometry& g, const memory& diff_dst,
                              const paddle::Tensor& weight, float* diff_src) {
  backward_data(g).execute(g, diff_dst, weight.data<float>(), diff_src);
}

inline void run_backward_weights(const Geometry& g, const memory& src, const memory& diff_dst,
                                 float* diff_weights) {
  backward_weights(g).execute(g, src, diff_dst, diff_weights);
}

}  // namespace conv
}  // namespace paddle_resnet

#endif

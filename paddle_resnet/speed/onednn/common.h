// What the oneDNN operators share: the engine and stream, and Paddle tensor helpers.
#ifndef PADDLE_RESNET_ONEDNN_COMMON_H
#define PADDLE_RESNET_ONEDNN_COMMON_H

#include "dnnl_cpu_config.h"  // first: it stands in for oneDNN's own dnnl_config.h

#include <dlfcn.h>
#include <omp.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "paddle/extension.h"

namespace paddle_resnet {

// Inline, so every operator of the library uses one engine and one stream.
inline dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

inline dnnl::stream& cpu_stream() {
  static dnnl::stream stream(cpu_engine());
  return stream;
}

inline void check_input(const paddle::Tensor& t, const char* op, const char* name) {
  PD_CHECK(t.is_cpu(), op, ": ", name, " must be on the CPU");
  PD_CHECK(t.dtype() == paddle::DataType::FLOAT32, op, ": ", name, " must be float32");
}

inline float* data_of(const paddle::Tensor& t) { return const_cast<float*>(t.data<float>()); }

inline paddle::Tensor empty(const std::vector<int64_t>& shape) {
  return paddle::empty(shape, paddle::DataType::FLOAT32, paddle::CPUPlace());
}

// The OpenMP thread count oneDNN sees. Its omp_* calls bind to the runtime Paddle loaded
// first (Intel's libiomp5 in Paddle's CPU wheels, where paddle.base.core.set_num_threads
// acts), while this library's own call binds to GNU's libgomp, which oneDNN names as its
// dependency (both seen with LD_DEBUG=bindings, Paddle 3.3.1): the text holds both.
inline std::string openmp_threads() {
  using Get = int (*)();
  static const Get intel = [] {
    void* runtime = dlopen("libiomp5.so", RTLD_LAZY | RTLD_NOLOAD);
    return runtime ? reinterpret_cast<Get>(dlsym(runtime, "omp_get_max_threads")) : nullptr;
  }();
  const std::string gnu = std::to_string(omp_get_max_threads());
  return intel ? gnu + "," + std::to_string(intel()) : gnu;
}

// Primitives are made once per shape and kept: making a primitive descriptor searches
// oneDNN's implementation list, which costs more than a small primitive's execution.
// oneDNN also splits a primitive's work over the threads there are when it makes it, and
// the split orders its sums; so the thread count is part of the key, and a process whose
// count changed (a library user's second run) rounds as a fresh process does.
template <typename T, typename Key>
T& cached(std::unordered_map<std::string, std::unique_ptr<T>>* cache, const std::string& key,
          T* (*make)(const Key&), const Key& what) {
  const std::string keyed = key + ";threads=" + openmp_threads();
  auto found = cache->find(keyed);
  if (found == cache->end()) {
    try {
      found = cache->emplace(keyed, std::unique_ptr<T>(make(what))).first;
    } catch (const dnnl::error& e) {  // unthrown, it would abort the process
      PD_THROW("oneDNN refused ", key, ": ", e.what());
    }
  }
  return *found->second;
}

}  // namespace paddle_resnet

#endif

// What the oneDNN operators share: the engine and stream, and Paddle tensor helpers.
#ifndef PADDLE_RESNET_ONEDNN_COMMON_H
#define PADDLE_RESNET_ONEDNN_COMMON_H

#include "dnnl_cpu_config.h"  // first: it stands in for oneDNN's own dnnl_config.h

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

// Primitives are made once per shape and kept: making a primitive descriptor searches
// oneDNN's implementation list, which costs more than a small primitive's execution.
template <typename T, typename Key>
T& cached(std::unordered_map<std::string, std::unique_ptr<T>>* cache, const std::string& key,
          T* (*make)(const Key&), const Key& what) {
  auto found = cache->find(key);
  if (found == cache->end()) {
    try {
      found = cache->emplace(key, std::unique_ptr<T>(make(what))).first;
    } catch (const dnnl::error& e) {  // unthrown, it would abort the process
      PD_THROW("oneDNN refused ", key, ": ", e.what());
    }
  }
  return *found->second;
}

}  // namespace paddle_resnet

#endif

// What Paddle's bundled oneDNN is: a CPU-only library threaded with OpenMP.
//
// The `onednn-devel` wheel's own oneapi/dnnl/dnnl_config.h describes Intel's SYCL/TBB
// build, and the other headers include it with quotes (so an -I in front cannot replace
// it). Defining its include guard here, before any oneDNN header, makes this file the
// configuration they see. Included first by conv.cc; the macros are the ones that
// dnnl_config.h defines in oneDNN 3.x.
#ifndef PADDLE_RESNET_DNNL_CPU_CONFIG_H
#define PADDLE_RESNET_DNNL_CPU_CONFIG_H

#define ONEAPI_DNNL_DNNL_CONFIG_H  // the guard of oneapi/dnnl/dnnl_config.h

#if __GNUC__ >= 4
#define DNNL_HELPER_DLL_IMPORT __attribute__((visibility("default")))
#define DNNL_HELPER_DLL_EXPORT __attribute__((visibility("default")))
#else
#define DNNL_HELPER_DLL_IMPORT
#define DNNL_HELPER_DLL_EXPORT
#endif
#define DNNL_API
#define DNNL_DEPRECATED __attribute__((deprecated))

#define DNNL_RUNTIME_NONE 0u
#define DNNL_RUNTIME_SEQ 1u
#define DNNL_RUNTIME_OMP 2u
#define DNNL_RUNTIME_TBB 4u
#define DNNL_RUNTIME_THREADPOOL 8u
#define DNNL_RUNTIME_OCL 256u
#define DNNL_RUNTIME_SYCL 512u
#define DNNL_RUNTIME_DPCPP DNNL_RUNTIME_SYCL
#define DNNL_VENDOR_NONE 0u
#define DNNL_VENDOR_INTEL 1u
#define DNNL_VENDOR_NVIDIA 2u
#define DNNL_VENDOR_AMD 4u
#define DNNL_VENDOR_GENERIC 8u

#define DNNL_CPU_THREADING_RUNTIME DNNL_RUNTIME_OMP
#define DNNL_CPU_RUNTIME DNNL_RUNTIME_OMP
#define DNNL_GPU_RUNTIME DNNL_RUNTIME_NONE
#define DNNL_GPU_VENDOR DNNL_VENDOR_NONE

#define BUILD_TRAINING 1
#define BUILD_INFERENCE 0
#define BUILD_PRIMITIVE_ALL 1
#define BUILD_PRIMITIVE_CPU_ISA_ALL 1
#define BUILD_PRIMITIVE_GPU_ISA_ALL 1
#define BUILD_GEMM_KERNELS_ALL 1

#endif

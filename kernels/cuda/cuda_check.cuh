#pragma once
// Check macros for every CUDA runtime, cuBLAS and NCCL call of the CUDA backend (DESIGN: "every CUDA/NCCL/MPI
// call goes through a check macro with file and line"). A failure throws InternalError through
// divprune::throw_internal, which adds the rank; nothing here calls exit(), so main() can abort the whole job
// instead of leaving other ranks hanging in a collective.
//
// Plain host header: .cpp files of this directory include it as well as .cu files.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <string>

#include "core/errors.hpp"

namespace divprune::cuda_detail {

inline std::string cuda_error_text(cudaError_t rc) {
  return std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
}

inline std::string cublas_error_text(cublasStatus_t rc) {
  return std::string(cublasGetStatusName(rc)) + ": " + cublasGetStatusString(rc);
}

inline std::string nccl_error_text(ncclResult_t rc) {
  // ncclGetLastError carries the detail (which peer, which transport) that the status string lacks.
  std::string text = ncclGetErrorString(rc);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && last[0] != '\0') text += std::string(" (") + last + ")";
  return text;
}

}  // namespace divprune::cuda_detail

#define CHECK_CUDA(call)                                                                                 \
  do {                                                                                                   \
    cudaError_t divprune_cuda_rc_ = (call);                                                              \
    if (divprune_cuda_rc_ != cudaSuccess)                                                                \
      ::divprune::throw_internal(#call, ::divprune::cuda_detail::cuda_error_text(divprune_cuda_rc_),     \
                                 __FILE__, __LINE__);                                                    \
  } while (0)

#define CHECK_CUBLAS(call)                                                                               \
  do {                                                                                                   \
    cublasStatus_t divprune_cublas_rc_ = (call);                                                         \
    if (divprune_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::divprune::throw_internal(#call, ::divprune::cuda_detail::cublas_error_text(divprune_cublas_rc_), \
                                 __FILE__, __LINE__);                                                    \
  } while (0)

#define CHECK_NCCL(call)                                                                                 \
  do {                                                                                                   \
    ncclResult_t divprune_nccl_rc_ = (call);                                                             \
    if (divprune_nccl_rc_ != ncclSuccess)                                                                \
      ::divprune::throw_internal(#call, ::divprune::cuda_detail::nccl_error_text(divprune_nccl_rc_),     \
                                 __FILE__, __LINE__);                                                    \
  } while (0)

// Kernel launches report configuration errors (too many threads, too much shared memory) only through
// cudaGetLastError; every launcher calls this right after its <<<...>>>.
#define CHECK_CUDA_LAUNCH() CHECK_CUDA(cudaGetLastError())

// Non-throwing variant for destructors and deleters (a throw there would terminate the process): the failure
// is printed to stderr and otherwise ignored.
#define WARN_CUDA(call)                                                                                  \
  do {                                                                                                   \
    cudaError_t divprune_cuda_rc_ = (call);                                                              \
    if (divprune_cuda_rc_ != cudaSuccess)                                                                \
      std::fprintf(stderr, "%s:%d: `%s` failed: %s\n", __FILE__, __LINE__, #call,                        \
                   ::divprune::cuda_detail::cuda_error_text(divprune_cuda_rc_).c_str());                 \
  } while (0)

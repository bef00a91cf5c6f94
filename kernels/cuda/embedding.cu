#include "kernels/cuda/embedding.cuh"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;

// One block per token: consecutive threads copy consecutive channels of the row (coalesced).
template <typename T>
__global__ void embedding_kernel(const T* __restrict__ table, int64_t rows, int64_t hidden,
                                 const int32_t* __restrict__ ids, int64_t vocab_begin, T* __restrict__ out) {
  const int64_t token = blockIdx.x;
  const int64_t local = static_cast<int64_t>(ids[token]) - vocab_begin;
  const bool inside = local >= 0 && local < rows;
  T* dst = out + token * hidden;
  if (inside) {
    const T* src = table + local * hidden;
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) dst[c] = src[c];
  } else {
    for (int64_t c = threadIdx.x; c < hidden; c += blockDim.x) dst[c] = from_float<T>(0.0f);
  }
}

constexpr int kThreads = 256;

}  // namespace

template <typename T>
void launch_embedding(const T* table, int64_t rows, int64_t hidden, const int32_t* ids, int64_t n,
                      int64_t vocab_begin, T* out, cudaStream_t stream) {
  if (n == 0 || hidden == 0) return;
  embedding_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(table, rows, hidden, ids, vocab_begin, out);
  CHECK_CUDA_LAUNCH();
}

template void launch_embedding<float>(const float*, int64_t, int64_t, const int32_t*, int64_t, int64_t, float*,
                                      cudaStream_t);
template void launch_embedding<__nv_bfloat16>(const __nv_bfloat16*, int64_t, int64_t, const int32_t*, int64_t,
                                              int64_t, __nv_bfloat16*, cudaStream_t);

}  // namespace divprune

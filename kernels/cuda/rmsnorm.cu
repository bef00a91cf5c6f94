#include "kernels/cuda/rmsnorm.cuh"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::to_float;

// One block per row. The second pass re-reads x (from L1/L2: a 4096-wide bf16 row is 8 KiB) rather than
// holding it in registers, so any hidden size works with one kernel. No __restrict__: out may alias x, and
// each element is read and written by the same thread.
template <typename T, typename W>
__global__ void rmsnorm_kernel(const T* x, const W* __restrict__ weight, T* out, int64_t cols, float eps) {
  const T* x_row = x + static_cast<int64_t>(blockIdx.x) * cols;
  T* out_row = out + static_cast<int64_t>(blockIdx.x) * cols;
  float sum_sq = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = to_float(x_row[j]);
    sum_sq += v * v;
  }
  sum_sq = cuda_detail::block_sum(sum_sq);
  const float inv_rms = rsqrtf(sum_sq / static_cast<float>(cols) + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    out_row[j] = from_float<T>(to_float(x_row[j]) * inv_rms * to_float(weight[j]));
}

constexpr int kThreads = 256;

}  // namespace

template <typename T, typename W>
void launch_rmsnorm(const T* x, const W* weight, T* out, int64_t rows, int64_t cols, float eps,
                    cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(x, weight, out, cols, eps);
  CHECK_CUDA_LAUNCH();
}

template void launch_rmsnorm<float, float>(const float*, const float*, float*, int64_t, int64_t, float,
                                           cudaStream_t);
template void launch_rmsnorm<float, __nv_bfloat16>(const float*, const __nv_bfloat16*, float*, int64_t, int64_t,
                                                   float, cudaStream_t);
template void launch_rmsnorm<__nv_bfloat16, float>(const __nv_bfloat16*, const float*, __nv_bfloat16*, int64_t,
                                                   int64_t, float, cudaStream_t);
template void launch_rmsnorm<__nv_bfloat16, __nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*,
                                                           __nv_bfloat16*, int64_t, int64_t, float, cudaStream_t);

}  // namespace divprune

#include "kernels/cuda/add.cuh"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::to_float;

template <typename T>
__global__ void add_kernel(T* x, const T* y, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    x[i] = from_float<T>(to_float(x[i]) + to_float(y[i]));
}

constexpr int kThreads = 256;

}  // namespace

template <typename T>
void launch_add(T* x, const T* y, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  add_kernel<<<cuda_detail::grid_stride_blocks(count, kThreads), kThreads, 0, stream>>>(x, y, count);
  CHECK_CUDA_LAUNCH();
}

template void launch_add<float>(float*, const float*, int64_t, cudaStream_t);
template void launch_add<__nv_bfloat16>(__nv_bfloat16*, const __nv_bfloat16*, int64_t, cudaStream_t);

}  // namespace divprune

#include "kernels/cuda/swiglu.cuh"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::to_float;

// No __restrict__: out may alias gate or up (element i is read and written by one thread).
template <typename T>
__global__ void swiglu_kernel(const T* gate, const T* up, T* out, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const float g = to_float(gate[i]);
    out[i] = from_float<T>(g / (1.0f + expf(-g)) * to_float(up[i]));
  }
}

constexpr int kThreads = 256;

}  // namespace

template <typename T>
void launch_swiglu(const T* gate, const T* up, T* out, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  swiglu_kernel<<<cuda_detail::grid_stride_blocks(count, kThreads), kThreads, 0, stream>>>(gate, up, out, count);
  CHECK_CUDA_LAUNCH();
}

template void launch_swiglu<float>(const float*, const float*, float*, int64_t, cudaStream_t);
template void launch_swiglu<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, __nv_bfloat16*, int64_t,
                                           cudaStream_t);

}  // namespace divprune

#include "kernels/cuda/convert.cuh"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::to_float;

template <typename Src, typename Dst>
__global__ void convert_kernel(const Src* __restrict__ src, Dst* __restrict__ dst, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    dst[i] = from_float<Dst>(to_float(src[i]));
}

constexpr int kThreads = 256;

}  // namespace

template <typename Src, typename Dst>
void launch_convert(const Src* src, Dst* dst, int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  convert_kernel<<<cuda_detail::grid_stride_blocks(count, kThreads), kThreads, 0, stream>>>(src, dst, count);
  CHECK_CUDA_LAUNCH();
}

template void launch_convert<float, __nv_bfloat16>(const float*, __nv_bfloat16*, int64_t, cudaStream_t);
template void launch_convert<__nv_bfloat16, float>(const __nv_bfloat16*, float*, int64_t, cudaStream_t);

}  // namespace divprune

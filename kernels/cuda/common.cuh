#pragma once
// Device helpers shared by the kernels of this directory: element conversion (activations are bf16 or fp32,
// arithmetic is always fp32) and warp/block reductions over __shfl_xor_sync.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

namespace divprune::cuda_detail {

constexpr int kWarpSize = 32;
constexpr unsigned kFullWarpMask = 0xffffffffu;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullWarpMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullWarpMask, v, offset));
  return v;
}

// Sum over the whole block, returned to every thread. blockDim.x must be a multiple of 32 (at most 1024).
// Safe to call several times in a row: the second __syncthreads orders the next call's writes after this
// call's reads.
__device__ __forceinline__ float block_sum(float v) {
  __shared__ float warp_partials[kWarpSize];
  __shared__ float total;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) warp_partials[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarpSize;
    float s = lane < warps ? warp_partials[lane] : 0.0f;
    s = warp_sum(s);
    if (lane == 0) total = s;
  }
  __syncthreads();
  return total;
}

// Grid size for a grid-stride loop over `count` elements: enough blocks to fill the GPU, capped so that huge
// tensors reuse threads instead of launching millions of blocks.
inline unsigned grid_stride_blocks(int64_t count, int threads_per_block) {
  constexpr int64_t kMaxBlocks = int64_t{1} << 16;
  const int64_t blocks = (count + threads_per_block - 1) / threads_per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

}  // namespace divprune::cuda_detail

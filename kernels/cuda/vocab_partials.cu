#include "kernels/cuda/vocab_partials.cuh"

#include <cuda/std/limits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::kFullWarpMask;
using cuda_detail::kWarpSize;
using cuda_detail::to_float;

constexpr int64_t kNoIndex = cuda::std::numeric_limits<int64_t>::max();

// Running statistics of part of a row: max, sum exp(x - max) (online softmax normaliser) and the lowest
// index holding the max. Partials of disjoint parts combine in any order.
struct RowPartial {
  float max = -cuda::std::numeric_limits<float>::infinity();
  float sum_exp = 0.0f;
  int64_t argmax = kNoIndex;
};

// exp(value - max) scaled to a new max; an empty partial (max = -inf) contributes nothing (its exp argument
// would be -inf - -inf = NaN).
__device__ __forceinline__ float rescaled(const RowPartial& p, float new_max) {
  return p.max == -cuda::std::numeric_limits<float>::infinity() ? 0.0f : p.sum_exp * expf(p.max - new_max);
}

__device__ __forceinline__ RowPartial combine(const RowPartial& a, const RowPartial& b) {
  RowPartial r;
  r.max = fmaxf(a.max, b.max);
  r.sum_exp = rescaled(a, r.max) + rescaled(b, r.max);
  // Ties break toward the lower id, whichever partial holds it. NaN never compares equal, so it never wins.
  if (a.max == r.max) r.argmax = a.argmax;
  if (b.max == r.max && b.argmax < r.argmax) r.argmax = b.argmax;
  return r;
}

__device__ __forceinline__ RowPartial warp_combine(RowPartial p) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    RowPartial other;
    other.max = __shfl_xor_sync(kFullWarpMask, p.max, offset);
    other.sum_exp = __shfl_xor_sync(kFullWarpMask, p.sum_exp, offset);
    other.argmax = __shfl_xor_sync(kFullWarpMask, p.argmax, offset);
    p = combine(p, other);
  }
  return p;
}

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / kWarpSize;

// One block per row, a single pass over the logits: each thread keeps an online (max, sum, argmax) over a
// strided (coalesced) subset of columns, then warps and the block combine their partials.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    vocab_partials_kernel(const T* __restrict__ logits, int64_t cols, const int32_t* __restrict__ targets,
                          int64_t vocab_begin, VocabRowStats* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const T* x = logits + row * cols;
  RowPartial p;
  for (int64_t j = threadIdx.x; j < cols; j += kThreads) {
    const float v = to_float(x[j]);
    if (v > p.max) {
      p.sum_exp = rescaled(p, v) + 1.0f;
      p.max = v;
      p.argmax = j;
    } else if (v == p.max) {
      // A thread visits its columns in increasing order, so a finite tie keeps the earlier column; only the
      // first -inf column (p starts empty at -inf) changes the argmax here.
      if (j < p.argmax) p.argmax = j;
      if (v != -cuda::std::numeric_limits<float>::infinity()) p.sum_exp += 1.0f;
    } else {
      p.sum_exp += expf(v - p.max);  // NaN logits fall here and poison the sum, as they would on the CPU
    }
  }
  p = warp_combine(p);

  __shared__ RowPartial warp_partials[kWarps];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  if (lane == 0) warp_partials[warp] = p;
  __syncthreads();
  if (warp != 0) return;
  p = lane < kWarps ? warp_partials[lane] : RowPartial{};
  p = warp_combine(p);
  if (lane != 0) return;

  VocabRowStats stats;
  stats.max = p.max;
  stats.sum_exp = p.sum_exp;
  stats.argmax = static_cast<int32_t>(vocab_begin + (p.argmax == kNoIndex ? 0 : p.argmax));  // all NaN: id 0
  stats.target_logit = 0.0f;
  stats.has_target = 0;
  if (targets != nullptr) {
    const int64_t local = static_cast<int64_t>(targets[row]) - vocab_begin;
    if (local >= 0 && local < cols) {
      stats.target_logit = to_float(x[local]);
      stats.has_target = 1;
    }
  }
  out[row] = stats;
}

}  // namespace

template <typename T>
void launch_vocab_partials(const T* logits, int64_t rows, int64_t cols, const int32_t* targets, int64_t vocab_begin,
                           VocabRowStats* out, cudaStream_t stream) {
  if (rows == 0) return;
  vocab_partials_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(logits, cols, targets, vocab_begin,
                                                                             out);
  CHECK_CUDA_LAUNCH();
}

template void launch_vocab_partials<float>(const float*, int64_t, int64_t, const int32_t*, int64_t, VocabRowStats*,
                                           cudaStream_t);
template void launch_vocab_partials<__nv_bfloat16>(const __nv_bfloat16*, int64_t, int64_t, const int32_t*, int64_t,
                                                   VocabRowStats*, cudaStream_t);

}  // namespace divprune

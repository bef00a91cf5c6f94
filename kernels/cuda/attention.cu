#include "kernels/cuda/attention.cuh"

#include <cmath>
#include <cuda/std/limits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::kFullWarpMask;
using cuda_detail::kWarpSize;
using cuda_detail::to_float;

// Work decomposition. A block owns kRowsPerBlock query rows that share one KV head: the rows are the
// flattened (token, head-in-group) pairs r = i * group + g, so under GQA the heads of a group (and under
// prefill consecutive tokens) reuse every K/V tile the block loads into shared memory. Each warp owns
// kRowsPerWarp of the rows. Keys are processed in tiles of 32 = one key per lane for the scores; for the
// weighted sum each lane owns the channels lane, lane + 32, ... of its rows' outputs.
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * kWarpSize;
constexpr int kRowsPerWarp = 4;
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;  // 16
constexpr int kKeysPerTile = kWarpSize;               // 32
constexpr int kMaxD = static_cast<int>(kAttentionMaxHeadDim);
constexpr int kChannelsPerLane = kMaxD / kWarpSize;  // 4
// K rows are padded by one float: in the score loop the 32 lanes read 32 different key rows at the same
// channel, which without padding (row stride 128 floats) would all hit the same shared-memory bank.
constexpr int kKeyRowStride = kMaxD + 1;

struct AttentionArgs {
  AttentionShape shape;
  int64_t group;       // H / Hkv query heads per KV head
  int64_t rows_total;  // n * group flattened query rows per KV head
  float scale;         // 1 / sqrt(D)
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    attention_kernel(const T* __restrict__ q, const T* __restrict__ k_cache, const T* __restrict__ v_cache,
                     T* __restrict__ out, const AttentionArgs args) {
  __shared__ float q_tile[kRowsPerBlock][kMaxD];  // pre-scaled by 1/sqrt(D)
  __shared__ float k_tile[kKeysPerTile][kKeyRowStride];
  __shared__ float v_tile[kKeysPerTile][kMaxD];

  const AttentionShape& s = args.shape;
  const int D = static_cast<int>(s.head_dim);  // <= kMaxD; int keeps the tile index arithmetic 32-bit
  const int64_t kv_head = blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int64_t kv_row_stride = s.kv_heads * D;  // elements between consecutive positions of the caches

  // Offset of row r's (token, head) vector in q/out (n, H, D).
  auto row_offset = [&](int64_t r) {
    const int64_t token = r / args.group, head = kv_head * args.group + r % args.group;
    return (token * s.heads + head) * D;
  };

  for (int e = threadIdx.x; e < kRowsPerBlock * D; e += kThreads) {
    const int r = e / D, d = e - r * D;
    const int64_t row = row0 + r;
    q_tile[r][d] = row < args.rows_total ? to_float(q[row_offset(row) + d]) * args.scale : 0.0f;
  }

  // Causal limits: row r sees keys 0 .. pos0 + token(r). Rows past the end (last block) get the limit of the
  // last real row so that their arithmetic stays finite; they are never written.
  const int64_t last_row = min(row0 + kRowsPerBlock, args.rows_total) - 1;
  const int64_t key_end = s.pos0 + last_row / args.group + 1;  // keys this block needs: [0, key_end)
  int64_t last_key[kRowsPerWarp];
  float running_max[kRowsPerWarp], running_sum[kRowsPerWarp];
  float acc[kRowsPerWarp][kChannelsPerLane];
#pragma unroll
  for (int k = 0; k < kRowsPerWarp; ++k) {
    const int64_t row = min(row0 + warp * kRowsPerWarp + k, last_row);
    last_key[k] = s.pos0 + row / args.group;
    running_max[k] = -cuda::std::numeric_limits<float>::infinity();
    running_sum[k] = 0.0f;
#pragma unroll
    for (int c = 0; c < kChannelsPerLane; ++c) acc[k][c] = 0.0f;
  }

  for (int64_t key0 = 0; key0 < key_end; key0 += kKeysPerTile) {
    __syncthreads();  // the previous tile is consumed (first pass: q_tile is written)
    for (int e = threadIdx.x; e < kKeysPerTile * D; e += kThreads) {
      const int c = e / D, d = e - c * D;
      const int64_t key = key0 + c;
      float k_value = 0.0f, v_value = 0.0f;  // zero past key_end: cache rows there may be uninitialised
      if (key < key_end) {
        const int64_t offset = key * kv_row_stride + kv_head * D + d;
        k_value = to_float(k_cache[offset]);
        v_value = to_float(v_cache[offset]);
      }
      k_tile[c][d] = k_value;
      v_tile[c][d] = v_value;
    }
    __syncthreads();

    // Scores of this warp's rows against key key0 + lane.
    float score[kRowsPerWarp];
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) score[k] = 0.0f;
    for (int d = 0; d < D; ++d) {
      const float k_value = k_tile[lane][d];
#pragma unroll
      for (int k = 0; k < kRowsPerWarp; ++k) score[k] += q_tile[warp * kRowsPerWarp + k][d] * k_value;
    }

    // Online softmax: rescale what was accumulated so far to the new running max. The first tile always
    // holds key 0, which every row sees, so running_max is finite from then on and no exp(-inf - -inf) occurs.
    const int64_t key = key0 + lane;
    float prob[kRowsPerWarp];
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) {
      const float masked = key <= last_key[k] ? score[k] : -cuda::std::numeric_limits<float>::infinity();
      const float new_max = fmaxf(running_max[k], cuda_detail::warp_max(masked));
      const float correction = expf(running_max[k] - new_max);
      prob[k] = expf(masked - new_max);
      running_sum[k] = running_sum[k] * correction + cuda_detail::warp_sum(prob[k]);
      running_max[k] = new_max;
#pragma unroll
      for (int c = 0; c < kChannelsPerLane; ++c) acc[k][c] *= correction;
    }

    // acc (rows, D) += prob (rows, 32 keys) · v_tile (32 keys, D); lane c broadcasts its key's probabilities.
    for (int c = 0; c < kKeysPerTile; ++c) {
      float v_row[kChannelsPerLane];
#pragma unroll
      for (int m = 0; m < kChannelsPerLane; ++m) {
        const int d = lane + m * kWarpSize;
        v_row[m] = d < D ? v_tile[c][d] : 0.0f;
      }
#pragma unroll
      for (int k = 0; k < kRowsPerWarp; ++k) {
        const float p = __shfl_sync(kFullWarpMask, prob[k], c);
#pragma unroll
        for (int m = 0; m < kChannelsPerLane; ++m) acc[k][m] += p * v_row[m];
      }
    }
  }

#pragma unroll
  for (int k = 0; k < kRowsPerWarp; ++k) {
    const int64_t row = row0 + warp * kRowsPerWarp + k;
    if (row >= args.rows_total) continue;
    const float inv_sum = 1.0f / running_sum[k];
    T* dst = out + row_offset(row);
#pragma unroll
    for (int m = 0; m < kChannelsPerLane; ++m) {
      const int d = lane + m * kWarpSize;
      if (d < D) dst[d] = from_float<T>(acc[k][m] * inv_sum);
    }
  }
}

}  // namespace

template <typename T>
void launch_attention(const T* q, const T* k_cache, const T* v_cache, T* out, const AttentionShape& shape,
                      cudaStream_t stream) {
  if (shape.n == 0 || shape.heads == 0) return;
  AttentionArgs args;
  args.shape = shape;
  args.group = shape.heads / shape.kv_heads;
  args.rows_total = shape.n * args.group;
  args.scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));  // as the CPU reference
  const dim3 grid(static_cast<unsigned>((args.rows_total + kRowsPerBlock - 1) / kRowsPerBlock),
                  static_cast<unsigned>(shape.kv_heads));
  attention_kernel<<<grid, kThreads, 0, stream>>>(q, k_cache, v_cache, out, args);
  CHECK_CUDA_LAUNCH();
}

template void launch_attention<float>(const float*, const float*, const float*, float*, const AttentionShape&,
                                      cudaStream_t);
template void launch_attention<__nv_bfloat16>(const __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
                                              __nv_bfloat16*, const AttentionShape&, cudaStream_t);

}  // namespace divprune

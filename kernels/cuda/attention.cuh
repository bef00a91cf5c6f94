#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// The largest head dimension the fused kernel holds in registers/shared memory (Llama-2: 128).
constexpr int64_t kAttentionMaxHeadDim = 128;

struct AttentionShape {
  int64_t n;         // query tokens, at positions pos0 .. pos0 + n - 1
  int64_t heads;     // H, local query heads
  int64_t kv_heads;  // Hkv, local KV heads; H % Hkv == 0
  int64_t head_dim;  // D <= kAttentionMaxHeadDim
  int64_t pos0;      // position of the first query token; the caches hold keys 0 .. pos0 + n - 1
};

// Causal GQA attention, fused flash-style (online softmax; the n x (pos0 + n) score matrix is never stored):
// q (n, H, D), k_cache/v_cache (T, Hkv, D) with T >= pos0 + n, out (n, H, D). Query head h uses KV head
// h / (H / Hkv); query i sees keys 0 .. pos0 + i. Scores, softmax and the weighted sum are fp32.
// T: float or __nv_bfloat16.
template <typename T>
void launch_attention(const T* q, const T* k_cache, const T* v_cache, T* out, const AttentionShape& shape,
                      cudaStream_t stream);

}  // namespace divprune

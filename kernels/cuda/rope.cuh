#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// Rotary embedding in place on x (n, heads, D), Hugging Face rotate-half convention: for j < D/2,
// (x_j, x_{j+D/2}) is rotated by angle (pos0 + i) * theta^(-2j/D). Angles are computed in double, as on the
// CPU reference: at position 4096 an fp32 angle would already be off by ~2e-4 rad.
template <typename T>
void launch_rope(T* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, float theta, cudaStream_t stream);

}  // namespace divprune

#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// dst[i] = Dst(src[i]) for i < count, round to nearest even. Instantiated for float -> bf16 (upload) and
// bf16 -> float (download).
template <typename Src, typename Dst>
void launch_convert(const Src* src, Dst* dst, int64_t count, cudaStream_t stream);

}  // namespace divprune

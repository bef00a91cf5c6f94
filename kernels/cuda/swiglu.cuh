#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// out = silu(gate) * up elementwise over `count` values, computed in fp32. T: float or __nv_bfloat16.
template <typename T>
void launch_swiglu(const T* gate, const T* up, T* out, int64_t count, cudaStream_t stream);

}  // namespace divprune

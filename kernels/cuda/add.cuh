#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// x += y elementwise over `count` values, the sum formed in fp32. T: float or __nv_bfloat16.
template <typename T>
void launch_add(T* x, const T* y, int64_t count, cudaStream_t stream);

}  // namespace divprune

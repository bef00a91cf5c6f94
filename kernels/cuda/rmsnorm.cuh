#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// out (rows, C) = x / rms(x) * weight, row by row, with the sum of squares accumulated in fp32.
// T (x, out) and W (weight) are float or __nv_bfloat16; out may alias x.
template <typename T, typename W>
void launch_rmsnorm(const T* x, const W* weight, T* out, int64_t rows, int64_t cols, float eps,
                    cudaStream_t stream);

}  // namespace divprune

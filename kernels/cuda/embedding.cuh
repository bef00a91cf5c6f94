#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// out (n, C) = table[ids[i] - vocab_begin] for ids inside the local slice table (rows, C), a zero row
// otherwise (vocab-parallel embedding). `ids` is a device array of n token ids. T: float or __nv_bfloat16.
template <typename T>
void launch_embedding(const T* table, int64_t rows, int64_t hidden, const int32_t* ids, int64_t n,
                      int64_t vocab_begin, T* out, cudaStream_t stream);

}  // namespace divprune

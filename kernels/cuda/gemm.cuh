#pragma once
#include <cublas_v2.h>

#include <cstdint>

namespace divprune {

// Element types a GEMM operand can have on this backend.
enum class GemmType { F32, BF16 };

struct GemmShape {
  int64_t n;    // rows of x and y (tokens)
  int64_t in;   // columns of x = columns of w
  int64_t out;  // rows of w = columns of y
};

// y (n, out) = x (n, in) · w (out, in)^T, all row-major, fp32 accumulation (CUBLAS_COMPUTE_32F, no TF32).
// x and w share `input` (bf16 weights/activations, or fp32); y is `output`: the input type, or F32 for bf16
// inputs (the lm_head writes fp32 logits). Runs on the stream bound to `handle`.
void launch_gemm(cublasHandle_t handle, const void* x, const void* w, GemmType input, void* y, GemmType output,
                 const GemmShape& shape);

}  // namespace divprune

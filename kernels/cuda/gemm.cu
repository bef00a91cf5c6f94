#include "kernels/cuda/gemm.cuh"

#include <limits>
#include <string>

#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

cudaDataType_t cuda_type(GemmType type) { return type == GemmType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

int checked_int(int64_t value, const char* what) {
  EXPECTS(value >= 0 && value <= std::numeric_limits<int>::max(),
          std::string("GEMM dimension ") + what + " = " + std::to_string(value) + " does not fit cuBLAS's int");
  return static_cast<int>(value);
}

}  // namespace

void launch_gemm(cublasHandle_t handle, const void* x, const void* w, GemmType input, void* y, GemmType output,
                 const GemmShape& shape) {
  EXPECTS(input == GemmType::BF16 || output == GemmType::F32, "GEMM: fp32 inputs need an fp32 output");
  const int n = checked_int(shape.n, "n"), in = checked_int(shape.in, "in"), out = checked_int(shape.out, "out");
  if (n == 0 || out == 0) return;
  if (in == 0) {  // an empty sum; cuBLAS would reject lda = 0
    cudaStream_t stream = nullptr;
    CHECK_CUBLAS(cublasGetStream(handle, &stream));
    const size_t element = output == GemmType::BF16 ? 2 : 4;
    CHECK_CUDA(cudaMemsetAsync(y, 0, static_cast<size_t>(n) * out * element, stream));
    return;
  }
  // cuBLAS is column-major. Row-major y (n, out) is column-major y^T (out, n), and
  //   y^T = w · x^T,
  // where row-major w (out, in) read column-major is w^T (in, out), hence op(A) = T with lda = in, and row-major
  // x (n, in) read column-major is x^T (in, n), hence op(B) = N with ldb = in.
  const float alpha = 1.0f, beta = 0.0f;
  CHECK_CUBLAS(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, cuda_type(input), in, x,
                            cuda_type(input), in, &beta, y, cuda_type(output), out, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

}  // namespace divprune

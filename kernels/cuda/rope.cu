#include "kernels/cuda/rope.cuh"

#include <limits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

namespace {

using cuda_detail::from_float;
using cuda_detail::to_float;

// One block per token: the D/2 (cos, sin) pairs of its position are computed once (double precision) into
// shared memory and applied to every head; consecutive threads touch consecutive channels of a head.
template <typename T>
__global__ void rope_kernel(T* __restrict__ x, int64_t heads, int64_t head_dim, int64_t pos0, float theta) {
  extern __shared__ float rotation[];  // cos (D/2) then sin (D/2)
  const int64_t half = head_dim / 2;
  float* cos_table = rotation;
  float* sin_table = rotation + half;
  const int64_t token = blockIdx.x;
  for (int64_t j = threadIdx.x; j < half; j += blockDim.x) {
    // Same expression as the CPU reference so both round to the same float.
    const double inv_freq = pow(static_cast<double>(theta), -2.0 * j / head_dim);
    const double angle = static_cast<double>(pos0 + token) * inv_freq;
    double s, c;
    sincos(angle, &s, &c);
    cos_table[j] = static_cast<float>(c);
    sin_table[j] = static_cast<float>(s);
  }
  __syncthreads();
  T* row = x + token * heads * head_dim;  // (heads, D)
  // One token's (heads, D/2) pairs fit in int (the launcher checks), and 32-bit division is far cheaper.
  const int pairs = static_cast<int>(heads * half), half_int = static_cast<int>(half);
  for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
    const int h = e / half_int, j = e - h * half_int;
    T* v = row + static_cast<int64_t>(h) * head_dim;
    const float a = to_float(v[j]), b = to_float(v[j + half]);
    v[j] = from_float<T>(a * cos_table[j] - b * sin_table[j]);
    v[j + half] = from_float<T>(b * cos_table[j] + a * sin_table[j]);
  }
}

constexpr int kThreads = 128;

}  // namespace

template <typename T>
void launch_rope(T* x, int64_t n, int64_t heads, int64_t head_dim, int64_t pos0, float theta, cudaStream_t stream) {
  if (n == 0 || heads == 0 || head_dim == 0) return;
  EXPECTS(heads * head_dim <= std::numeric_limits<int>::max(), "rope: one token's heads * D overflows int");
  const size_t shared_bytes = sizeof(float) * static_cast<size_t>(head_dim);  // D/2 cos + D/2 sin
  rope_kernel<<<static_cast<unsigned>(n), kThreads, shared_bytes, stream>>>(x, heads, head_dim, pos0, theta);
  CHECK_CUDA_LAUNCH();
}

template void launch_rope<float>(float*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);
template void launch_rope<__nv_bfloat16>(__nv_bfloat16*, int64_t, int64_t, int64_t, int64_t, float, cudaStream_t);

}  // namespace divprune

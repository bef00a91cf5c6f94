#pragma once
// The operations of the Llama forward and their backward, on host arrays, templated on the float type:
// float is what training runs, double is what the finite-difference tests run (the same code, so the tests
// check the real kernels). The float forward repeats the CPU backend's arithmetic operation for operation
// (kernels/cpu/cpu_backend.cpp: same cblas calls, same rsqrt/exp/silu), so that the training loss at step 0
// is the inference NLL of the same tokens.
//
// Conventions: row-major; n tokens of one sequence at positions 0..n-1; weights [out, in]. A backward function
// *adds* into the gradients of its weights (dw, dW) and, where named so, into the input gradient (dx +=),
// because the residual stream and the q/k/v projections sum several contributions.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <type_traits>
#include <vector>

#include "kernels/cpu/vec_math.hpp"

namespace divprune::train {

// C (M, N) = alpha op(A) op(B) + beta C, row-major.
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}
inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb),
              beta, c, static_cast<int>(ldc));
}

// exp of a non-positive argument: the backend's vectorised expf in float, std::exp in double.
template <class T>
inline T exp_np(T x) {
  if constexpr (std::is_same_v<T, float>) return exp_nonpositive(x);
  else return std::exp(x);
}
template <class T>
inline T silu_of(T x) {
  if constexpr (std::is_same_v<T, float>) return silu(x);
  else return x / (1.0 + std::exp(-x));
}

// ---- embedding ---------------------------------------------------------------------------------------------
// x (n, C) = table[ids]
template <class T>
void embedding_forward(const T* table, std::span<const int32_t> ids, int64_t c, T* x) {
  for (size_t i = 0; i < ids.size(); ++i) std::copy_n(table + ids[i] * c, c, x + i * c);
}
// dtable[ids[i]] += dx[i]
template <class T>
void embedding_backward(std::span<const int32_t> ids, int64_t c, const T* dx, T* dtable) {
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < c; ++j) dtable[ids[i] * c + j] += dx[i * c + j];
}

// ---- linear -------------------------------------------------------------------------------------------------
// y (n, out) = x (n, in) · W (out, in)^T
template <class T>
void linear_forward(const T* x, const T* w, int64_t n, int64_t in, int64_t out, T* y) {
  gemm(false, true, n, out, in, T(1), x, in, w, in, T(0), y, out);
}
// dx (n, in) = dy W (beta 0) or += dy W (accumulate); dW (out, in) += dy^T x
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, int64_t n, int64_t in, int64_t out, T* dx,
                     bool accumulate_dx, T* dw) {
  gemm(false, false, n, in, out, T(1), dy, out, w, in, accumulate_dx ? T(1) : T(0), dx, in);
  gemm(true, false, out, in, n, T(1), dy, out, x, in, T(1), dw, in);
}

// ---- RMSNorm -------------------------------------------------------------------------------------------------
// y = x * r * w with r = 1 / sqrt(mean(x^2) + eps) per row; r is kept for the backward.
template <class T>
void rmsnorm_forward(const T* x, const T* w, float eps, int64_t n, int64_t c, T* y, T* r) {
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    double sum_sq = 0.0;  // double, as the backend
    for (int64_t j = 0; j < c; ++j) sum_sq += static_cast<double>(xi[j]) * xi[j];
    const T inv = static_cast<T>(1.0 / std::sqrt(sum_sq / c + eps));
    r[i] = inv;
    for (int64_t j = 0; j < c; ++j) y[i * c + j] = xi[j] * inv * w[j];
  }
}
// dw += sum_i dy x r;  dx += r (w dy) - x r^3 / C * sum_j (dy_j w_j x_j)   (dr/dx_j = -r^3 x_j / C)
template <class T>
void rmsnorm_backward(const T* x, const T* w, const T* r, const T* dy, int64_t n, int64_t c, T* dx, T* dw) {
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    const T* dyi = dy + i * c;
    const T ri = r[i];
    double dot = 0.0;
    for (int64_t j = 0; j < c; ++j) dot += static_cast<double>(dyi[j]) * w[j] * xi[j];
    const T coef = static_cast<T>(dot * ri * ri * ri / c);
    for (int64_t j = 0; j < c; ++j) {
      dw[j] += dyi[j] * xi[j] * ri;
      dx[i * c + j] += ri * w[j] * dyi[j] - xi[j] * coef;
    }
  }
}

// ---- RoPE (rotate-half, positions 0..n-1) --------------------------------------------------------------------
// The forward rotates each (x_j, x_{j+D/2}) pair by angle pos * theta^(-2j/D); the backward rotates the
// gradient pair by the opposite angle (the transpose of a rotation).
template <class T>
void rope_apply(T* x, int64_t n, int64_t heads, int64_t d, float theta, bool inverse) {
  const int64_t half = d / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  std::vector<T> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
  for (int64_t j = 0; j < half; ++j) inv_freq[j] = std::pow(static_cast<double>(theta), -2.0 * j / d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(i) * inv_freq[j];
      cos_t[j] = static_cast<T>(std::cos(angle));
      sin_t[j] = inverse ? -static_cast<T>(std::sin(angle)) : static_cast<T>(std::sin(angle));
    }
    for (int64_t h = 0; h < heads; ++h) {
      T* v = x + (i * heads + h) * d;
      for (int64_t j = 0; j < half; ++j) {
        const T a = v[j], b = v[j + half];
        v[j] = a * cos_t[j] - b * sin_t[j];
        v[j + half] = b * cos_t[j] + a * sin_t[j];
      }
    }
  }
}

// ---- causal GQA attention ---------------------------------------------------------------------------------------
// q (n, H, D), k/v (n, Hkv, D) -> out (n, H, D); probs (H, n, n) are kept for the backward (zero above the
// diagonal). Query head h reads KV head h / (H / Hkv).
template <class T>
void attention_forward(const T* q, const T* k, const T* v, int64_t n, int64_t heads, int64_t kv_heads, int64_t d,
                       T* out, T* probs) {
  const int64_t group = heads / kv_heads;
  T scale;
  if constexpr (std::is_same_v<T, float>) scale = 1.0f / std::sqrt(static_cast<float>(d));
  else scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kvh = h / group;
    T* s = probs + h * n * n;
    gemm(false, true, n, n, d, scale, q + h * d, heads * d, k + kvh * d, kv_heads * d, T(0), s, n);
    for (int64_t i = 0; i < n; ++i) {
      T* row = s + i * n;
      const int64_t visible = i + 1;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t j = 0; j < visible; ++j) m = std::max(m, row[j]);
      T sum = 0;
      for (int64_t j = 0; j < visible; ++j) {
        row[j] = exp_np<T>(row[j] - m);
        sum += row[j];
      }
      const T inv = T(1) / sum;
      for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
      std::fill(row + visible, row + n, T(0));
    }
    gemm(false, false, n, d, n, T(1), s, n, v + kvh * d, kv_heads * d, T(0), out + h * d, heads * d);
  }
}
// From dout (n, H, D): dq = (n, H, D) (overwritten), dk/dv (n, Hkv, D) (accumulated over the heads of a group;
// zero them first). dP = dO V^T, dV += P^T dO, dS = P (dP - rowsum(P dP)), dq = scale dS K, dK += scale dS^T Q.
// `scratch` holds n*n values.
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* probs, const T* dout, int64_t n, int64_t heads,
                        int64_t kv_heads, int64_t d, T* dq, T* dk, T* dv, std::vector<T>& scratch) {
  const int64_t group = heads / kv_heads;
  const T scale = T(1) / std::sqrt(static_cast<T>(d));
  scratch.resize(static_cast<size_t>(n * n));
  T* ds = scratch.data();
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kvh = h / group;
    const T* p = probs + h * n * n;
    gemm(false, true, n, n, d, T(1), dout + h * d, heads * d, v + kvh * d, kv_heads * d, T(0), ds, n);  // dP
    gemm(true, false, n, d, n, T(1), p, n, dout + h * d, heads * d, T(1), dv + kvh * d, kv_heads * d);
    for (int64_t i = 0; i < n; ++i) {
      T* row = ds + i * n;
      const T* prow = p + i * n;
      T dot = 0;
      for (int64_t j = 0; j <= i; ++j) dot += prow[j] * row[j];
      for (int64_t j = 0; j <= i; ++j) row[j] = prow[j] * (row[j] - dot);
      std::fill(row + i + 1, row + n, T(0));
    }
    gemm(false, false, n, d, n, scale, ds, n, k + kvh * d, kv_heads * d, T(0), dq + h * d, heads * d);
    gemm(true, false, n, d, n, scale, ds, n, q + h * d, heads * d, T(1), dk + kvh * d, kv_heads * d);
  }
}

// ---- SwiGLU -----------------------------------------------------------------------------------------------------
template <class T>
void swiglu_forward(const T* gate, const T* up, int64_t count, T* out) {
  for (int64_t i = 0; i < count; ++i) out[i] = silu_of<T>(gate[i]) * up[i];
}
// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g)
template <class T>
void swiglu_backward(const T* gate, const T* up, const T* dout, int64_t count, T* dgate, T* dup) {
  for (int64_t i = 0; i < count; ++i) {
    const T g = gate[i];
    const T s = T(1) / (T(1) + std::exp(-g));
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (T(1) + g * (T(1) - s));
  }
}

// ---- cross-entropy ------------------------------------------------------------------------------------------------
// drow = scale (exp(row - log Z) - onehot(target)); drow may alias row (each entry is read before written).
template <class T>
void softmax_gradient(const T* row, double log_z, int32_t target, int64_t v, T scale, T* drow) {
  const T lz = static_cast<T>(log_z);
  for (int64_t j = 0; j < v; ++j) drow[j] = scale * exp_np<T>(row[j] - lz);
  drow[target] -= scale;
}
// Per row: log Z = max + log sum exp(logit - max), nll = log Z - logit[target]. Returns the summed NLL; when
// dlogits is given, writes dlogits = scale (softmax - onehot(target)) (scale = 1 / tokens of the batch: mean
// loss). `given_log_z` (n): log Z computed elsewhere (the float training forward takes it from the CPU
// backend's vocab_partials, so that its loss is the inference NLL to the last bit).
template <class T>
double cross_entropy(const T* logits, std::span<const int32_t> targets, int64_t v, T scale, T* dlogits,
                     const double* given_log_z = nullptr) {
  double total = 0.0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const T* row = logits + i * v;
    if (given_log_z) {
      total += given_log_z[i] - static_cast<double>(row[targets[i]]);
      if (dlogits) softmax_gradient(row, given_log_z[i], targets[i], v, scale, dlogits + i * v);
      continue;
    }
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < v; ++j) m = row[j] > m ? row[j] : m;
    double s = 0.0;
    constexpr int64_t kBlock = 256;
    for (int64_t b = 0; b < v; b += kBlock) {
      T block = 0;
      for (int64_t j = b, end = std::min(v, b + kBlock); j < end; ++j) block += exp_np<T>(row[j] - m);
      s += block;
    }
    if constexpr (std::is_same_v<T, float>) s = static_cast<float>(s);  // the backend stores sum_exp as float
    const double log_z = static_cast<double>(m) + std::log(s);
    total += log_z - static_cast<double>(row[targets[i]]);
    if (dlogits) softmax_gradient(row, log_z, targets[i], v, scale, dlogits + i * v);
  }
  return total;
}

}  // namespace divprune::train

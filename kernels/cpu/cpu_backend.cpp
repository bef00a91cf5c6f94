#include "kernels/cpu/cpu_backend.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/errors.hpp"
#include "kernels/cpu/vec_math.hpp"

namespace divprune {

namespace {

// Max of a row with 16 independent lanes: a plain max reduction does not vectorise without -ffast-math,
// and this pass runs over the whole vocabulary for every scored token.
float row_max(const float* row, int64_t v) {
  constexpr int kLanes = 16;
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + kLanes <= v; j += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] = row[j + k] > lanes[k] ? row[j + k] : lanes[k];
  float m = -std::numeric_limits<float>::infinity();
  for (int k = 0; k < kLanes; ++k) m = lanes[k] > m ? lanes[k] : m;
  for (; j < v; ++j) m = row[j] > m ? row[j] : m;
  return m;  // NaN logits are skipped here but still reach the caller: exp(NaN - m) makes the sum NaN
}

// sum exp(row - m): float sums over blocks of 256 (vectorised, ~1e-7 relative each), blocks added in double.
// A plain float sum over a 32000-token vocabulary drifts by ~1e-6 relative, enough to make perplexities at
// different tp (different partial sums) disagree in the 6th digit.
double row_sum_exp(const float* row, int64_t v, float m) {
  constexpr int64_t kBlock = 256;
  double total = 0.0;
  for (int64_t b = 0; b < v; b += kBlock) {
    const int64_t end = std::min(v, b + kBlock);
    float block = 0.0f;
#pragma omp simd reduction(+ : block)
    for (int64_t j = b; j < end; ++j) block += exp_nonpositive(row[j] - m);
    total += block;
  }
  return total;
}

void expect_f32(const Tensor& t, const char* what) {
  EXPECTS(t.dtype() == DType::F32 && t.device() == Device::Cpu,
          fmt::format("CPU backend: {} must be a host float32 tensor", what));
}
}  // namespace

Tensor CpuBackend::empty(const Shape& shape, DType dtype) {
  EXPECTS(dtype == DType::F32, "CPU backend stores float32 only");
  return host_tensor(shape);
}

Tensor CpuBackend::upload(std::span<const float> host, const Shape& shape, DType dtype) {
  EXPECTS(static_cast<int64_t>(host.size()) == shape_numel(shape),
          fmt::format("upload of {} values into {}", host.size(), shape_string(shape)));
  Tensor t = empty(shape, dtype);
  if (!host.empty()) std::memcpy(t.data(), host.data(), host.size_bytes());
  return t;
}

void CpuBackend::download(const Tensor& tensor, std::span<float> host) {
  expect_f32(tensor, "download source");
  EXPECTS(static_cast<int64_t>(host.size()) == tensor.numel(), "download size");
  if (!host.empty()) std::memcpy(host.data(), tensor.data(), host.size_bytes());
}

void CpuBackend::embedding(const Tensor& table, std::span<const int32_t> ids, int64_t vocab_begin, Tensor& out) {
  expect_f32(table, "embedding table");
  const int64_t rows = table.dim(0), hidden = table.dim(1);
  EXPECTS(out.dim(0) == static_cast<int64_t>(ids.size()) && out.dim(1) == hidden, "embedding output shape");
  const float* src = table.data_as<float>();
  float* dst = out.data_as<float>();
  for (size_t i = 0; i < ids.size(); ++i) {
    int64_t local = ids[i] - vocab_begin;
    float* row = dst + i * hidden;
    if (local >= 0 && local < rows) {
      std::memcpy(row, src + local * hidden, sizeof(float) * hidden);
    } else {
      std::fill(row, row + hidden, 0.0f);
    }
  }
}

void CpuBackend::rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  const int64_t n = x.dim(0), c = x.numel() / x.dim(0);
  EXPECTS(weight.numel() == c && out.numel() == x.numel(), "rmsnorm shapes");
  const float* w = weight.data_as<float>();
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x.data_as<float>() + i * c;
    float* oi = out.data_as<float>() + i * c;
    double sum_sq = 0.0;  // double: the reference must not lose digits on wide hidden sizes
    for (int64_t j = 0; j < c; ++j) sum_sq += static_cast<double>(xi[j]) * xi[j];
    float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / c + eps));
    for (int64_t j = 0; j < c; ++j) oi[j] = xi[j] * inv * w[j];
  }
}

void CpuBackend::matmul(const Tensor& x, const Tensor& w, Tensor& y) {
  expect_f32(x, "matmul input");
  expect_f32(w, "matmul weight");
  const int64_t n = x.dim(0), in = w.dim(1), out = w.dim(0);
  EXPECTS(x.numel() == n * in && y.numel() == n * out,
          fmt::format("matmul x {} w {} y {}", shape_string(x.shape()), shape_string(w.shape()),
                      shape_string(y.shape())));
  if (n == 0 || out == 0) return;
  if (in == 0) {
    std::fill(y.data_as<float>(), y.data_as<float>() + n * out, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x.data_as<float>(), static_cast<int>(in), w.data_as<float>(),
              static_cast<int>(in), 0.0f, y.data_as<float>(), static_cast<int>(out));
}

void CpuBackend::rope(Tensor& x, int64_t pos0, float theta) {
  const int64_t n = x.dim(0), heads = x.dim(1), d = x.dim(2), half = d / 2;
  std::vector<float> cos_table(half), sin_table(half);
  std::vector<double> inv_freq(half);
  for (int64_t j = 0; j < half; ++j) inv_freq[j] = std::pow(static_cast<double>(theta), -2.0 * j / d);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < half; ++j) {
      double angle = static_cast<double>(pos0 + i) * inv_freq[j];
      cos_table[j] = static_cast<float>(std::cos(angle));
      sin_table[j] = static_cast<float>(std::sin(angle));
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x.data_as<float>() + (i * heads + h) * d;
      for (int64_t j = 0; j < half; ++j) {
        float a = v[j], b = v[j + half];
        v[j] = a * cos_table[j] - b * sin_table[j];
        v[j + half] = b * cos_table[j] + a * sin_table[j];
      }
    }
  }
}

void CpuBackend::attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t pos0,
                           Tensor& out) {
  const int64_t n = q.dim(0), heads = q.dim(1), d = q.dim(2);
  const int64_t kv_heads = k_cache.dim(1), length = pos0 + n;
  EXPECTS(heads % kv_heads == 0 && length <= k_cache.dim(0), "attention shapes");
  const int64_t group = heads / kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  scores_.resize(static_cast<size_t>(n * length));
  float* s = scores_.data();
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kvh = h / group;
    // scores (n, length) = scale * q_h (n, D) · k_h (length, D)^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(length),
                static_cast<int>(d), scale, q.data_as<float>() + h * d, static_cast<int>(heads * d),
                k_cache.data_as<float>() + kvh * d, static_cast<int>(kv_heads * d), 0.0f, s,
                static_cast<int>(length));
    for (int64_t i = 0; i < n; ++i) {
      float* row = s + i * length;
      const int64_t visible = pos0 + i + 1;  // causal: keys 0..pos0+i
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < visible; ++j) m = std::max(m, row[j]);
      float sum = 0.0f;
      for (int64_t j = 0; j < visible; ++j) {
        row[j] = exp_nonpositive(row[j] - m);
        sum += row[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
      std::fill(row + visible, row + length, 0.0f);
    }
    // out_h (n, D) = p (n, length) · v_h (length, D)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n), static_cast<int>(d),
                static_cast<int>(length), 1.0f, s, static_cast<int>(length), v_cache.data_as<float>() + kvh * d,
                static_cast<int>(kv_heads * d), 0.0f, out.data_as<float>() + h * d, static_cast<int>(heads * d));
  }
}

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, Tensor& out) {
  const int64_t count = gate.numel();
  EXPECTS(up.numel() == count && out.numel() == count, "swiglu shapes");
  const float* g = gate.data_as<float>();
  const float* u = up.data_as<float>();
  float* o = out.data_as<float>();
  for (int64_t i = 0; i < count; ++i) o[i] = silu(g[i]) * u[i];
}

void CpuBackend::add(Tensor& x, const Tensor& y) {
  EXPECTS(x.numel() == y.numel(), "add shapes");
  float* a = x.data_as<float>();
  const float* b = y.data_as<float>();
  for (int64_t i = 0, count = x.numel(); i < count; ++i) a[i] += b[i];
}

void CpuBackend::vocab_partials(const Tensor& logits, std::span<const int32_t> targets, int64_t vocab_begin,
                                VocabPartials& out) {
  const int64_t n = logits.dim(0), v = logits.dim(1);
  EXPECTS(targets.empty() || static_cast<int64_t>(targets.size()) == n, "vocab_partials targets");
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data_as<float>() + i * v;
    const float m = row_max(row, v);
    int64_t first = 0;  // ties break toward the lowest id: the first position holding the max
    while (first < v && !(row[first] == m)) ++first;
    if (first == v) first = 0;  // all NaN: keep 0 and let the NaN max propagate
    const double s = row_sum_exp(row, v, m);
    out.max[i] = m;
    out.sum_exp[i] = static_cast<float>(s);
    out.argmax[i] = static_cast<int32_t>(vocab_begin + first);
    if (!targets.empty()) {
      int64_t local = targets[i] - vocab_begin;
      if (local >= 0 && local < v) {
        out.target_logit[i] = row[local];
        out.has_target[i] = 1;
      }
    }
  }
}

}  // namespace divprune

// ---- KL partials (Backend::kl_partials default and its host reference) -------------------------------------

namespace divprune {

namespace {
// exp(x) in double for x <= ~0, vectorisable: Cody-Waite reduction by ln 2, then the Taylor polynomial of
// degree 12 on |r| <= ln2/2 (truncation < 2e-16 relative). Below -700 returns ~1e-304.
inline double exp_double(double x) {
  x = x < -700.0 ? -700.0 : x;
  const double n = std::nearbyint(x * 1.4426950408889634);
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  return p * std::bit_cast<double>(bits);
}
}  // namespace

void KlPartials::resize(size_t n) {
  kl.assign(n, 0.0);
  base_mass.assign(n, 0.0);
  model_mass.assign(n, 0.0);
  model_total.assign(n, 0.0);
}

void kl_partials_host(const float* logits, int64_t n, int64_t v, std::span<const float> base_values,
                      std::span<const double> base_offset, std::span<const double> log_z, KlPartials& out) {
  EXPECTS(static_cast<int64_t>(base_values.size()) == n * v && static_cast<int64_t>(base_offset.size()) == n &&
              static_cast<int64_t>(log_z.size()) == n,
          "kl_partials: array sizes do not match the logits");
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * v;
    const float* base = base_values.data() + i * v;
    const double lz = log_z[static_cast<size_t>(i)];
    const double off = base_offset[static_cast<size_t>(i)];
    double s_kl = 0.0, s_bm = 0.0, s_mm = 0.0, s_mt = 0.0;
#pragma omp simd reduction(+ : s_kl, s_bm, s_mm, s_mt)
    for (int64_t j = 0; j < v; ++j) {
      const float b = base[j];
      const bool stored = b > -std::numeric_limits<float>::infinity();
      const double lb = stored ? static_cast<double>(b) - off : -700.0;  // log p_b
      const double lc = static_cast<double>(row[j]) - lz;                 // log p_c
      const double pb = stored ? exp_double(lb) : 0.0;
      const double pc = exp_double(lc);
      s_kl += stored ? pb * (lb - lc) : 0.0;
      s_bm += pb;
      s_mm += stored ? pc : 0.0;
      s_mt += pc;
    }
    out.kl[static_cast<size_t>(i)] = s_kl;
    out.base_mass[static_cast<size_t>(i)] = s_bm;
    out.model_mass[static_cast<size_t>(i)] = s_mm;
    out.model_total[static_cast<size_t>(i)] = s_mt;
  }
}

void Backend::kl_partials(const Tensor& logits, std::span<const float> base_values, std::span<const double> base_offset,
                          std::span<const double> log_z, KlPartials& out) {
  EXPECTS(logits.rank() == 2, "kl_partials: logits must be (n, V)");
  const int64_t n = logits.dim(0), v = logits.dim(1);
  if (logits.device() == Device::Cpu && logits.dtype() == DType::F32) {
    kl_partials_host(logits.data_as<const float>(), n, v, base_values, base_offset, log_z, out);
    return;
  }
  std::vector<float> host(static_cast<size_t>(n * v));
  download(logits, host);
  kl_partials_host(host.data(), n, v, base_values, base_offset, log_z, out);
}

}  // namespace divprune

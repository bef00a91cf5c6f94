#include "metrics/base_logprobs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/dtype.hpp"
#include "core/errors.hpp"

namespace divprune {

std::vector<uint16_t> encode_logprobs(std::span<const float> logits, int64_t n, int64_t vocab,
                                      std::span<const double> log_z, std::vector<double>& shift) {
  std::vector<uint16_t> out(static_cast<size_t>(n * vocab));
  shift.assign(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * vocab;
    const double lz = log_z[static_cast<size_t>(i)];
    double c = 0.0;  // sum_v p_v log p_v
    for (int64_t j = 0; j < vocab; ++j) {
      const double lp = static_cast<double>(row[j]) - lz;
      c += std::exp(lp) * lp;
    }
    shift[static_cast<size_t>(i)] = c;
    for (int64_t j = 0; j < vocab; ++j)
      out[static_cast<size_t>(i * vocab + j)] = float_to_half(static_cast<float>(static_cast<double>(row[j]) - lz - c));
  }
  return out;
}

void encode_topk(std::span<const float> logits, int64_t n, int64_t vocab, std::span<const double> log_z, int64_t k,
                 std::vector<int32_t>& ids, std::vector<uint16_t>& values) {
  EXPECTS(k >= 1 && k <= vocab, "encode_topk: k outside [1, vocab]");
  ids.assign(static_cast<size_t>(n * k), 0);
  values.assign(static_cast<size_t>(n * k), 0);
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * vocab;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t r = 0; r < k; ++r) {
      const int32_t id = order[static_cast<size_t>(r)];
      ids[static_cast<size_t>(i * k + r)] = id;
      values[static_cast<size_t>(i * k + r)] =
          float_to_half(static_cast<float>(static_cast<double>(row[id]) - log_z[static_cast<size_t>(i)]));
    }
  }
}

std::vector<double> half_row_lse(std::span<const uint16_t> bits, int64_t n, int64_t width) {
  std::vector<double> lse(static_cast<size_t>(n));
  std::vector<float> row(static_cast<size_t>(width));
  for (int64_t i = 0; i < n; ++i) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < width; ++j) {
      row[static_cast<size_t>(j)] = half_to_float(bits[static_cast<size_t>(i * width + j)]);
      m = std::max(m, row[static_cast<size_t>(j)]);
    }
    double s = 0.0;
    for (float v : row) s += std::exp(static_cast<double>(v) - m);
    lse[static_cast<size_t>(i)] = m + std::log(s);
  }
  return lse;
}

void BaseLogprobSlices::add_full_chunk(std::span<const uint16_t> rows, int64_t n, std::span<const double> lse) {
  EXPECTS(mode_ == LogprobMode::Full, "add_full_chunk on a top-k store");
  EXPECTS(static_cast<int64_t>(rows.size()) == n * vocab_ && static_cast<int64_t>(lse.size()) == n,
          "add_full_chunk: sizes");
  const int64_t w = slice_.size();
  std::vector<uint16_t> mine(static_cast<size_t>(n * w));
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(rows.data() + i * vocab_ + slice_.begin, w, mine.data() + i * w);
  rows_.push_back(n);
  bits_.push_back(std::move(mine));
  lse_.emplace_back(lse.begin(), lse.end());
}

void BaseLogprobSlices::add_topk_chunk(std::span<const int32_t> ids, std::span<const uint16_t> values, int64_t n,
                                       int64_t k) {
  EXPECTS(mode_ == LogprobMode::TopK, "add_topk_chunk on a full store");
  EXPECTS(static_cast<int64_t>(ids.size()) == n * k && static_cast<int64_t>(values.size()) == n * k, "add_topk_chunk: sizes");
  k_ = k;
  rows_.push_back(n);
  ids_.emplace_back(ids.begin(), ids.end());
  bits_.emplace_back(values.begin(), values.end());
}

void BaseLogprobSlices::dense(int64_t chunk, std::vector<float>& values, std::vector<double>& offset) const {
  const size_t c = static_cast<size_t>(chunk);
  EXPECTS(c < rows_.size(), "BaseLogprobSlices: no such kept chunk");
  const int64_t n = rows_[c], w = slice_.size();
  values.resize(static_cast<size_t>(n * w));
  if (mode_ == LogprobMode::Full) {
    const auto& bits = bits_[c];
    for (size_t at = 0; at < values.size(); ++at) values[at] = half_to_float(bits[at]);
    offset = lse_[c];
    return;
  }
  offset.assign(static_cast<size_t>(n), 0.0);
  std::fill(values.begin(), values.end(), -std::numeric_limits<float>::infinity());
  const auto& ids = ids_[c];
  const auto& bits = bits_[c];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t r = 0; r < k_; ++r) {
      const int64_t id = ids[static_cast<size_t>(i * k_ + r)];
      if (id >= slice_.begin && id < slice_.end)
        values[static_cast<size_t>(i * w + id - slice_.begin)] = half_to_float(bits[static_cast<size_t>(i * k_ + r)]);
    }
}


}  // namespace divprune

#include "metrics/divergence.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.hpp"

namespace divprune {

std::string percentile_name(double level) {
  std::string s = fmt::format("p{}", level);
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

double percentile_sorted(std::span<const double> sorted, double level) {
  if (sorted.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double rank = level / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + frac * (sorted[hi] - sorted[lo]);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return percentile_sorted(values, 50.0);
}

SampleSummary summarize(std::span<const double> values) {
  SampleSummary s;
  s.count = static_cast<int64_t>(values.size());
  if (values.empty()) {
    s.mean = s.std = s.stderr_ = s.rms = std::numeric_limits<double>::quiet_NaN();
    s.percentiles.fill(std::numeric_limits<double>::quiet_NaN());
    return s;
  }
  double sum = 0.0, sq = 0.0;
  for (double v : values) {
    sum += v;
    sq += v * v;
  }
  const double n = static_cast<double>(values.size());
  s.mean = sum / n;
  s.rms = std::sqrt(sq / n);
  double dev = 0.0;
  for (double v : values) dev += (v - s.mean) * (v - s.mean);
  s.std = values.size() > 1 ? std::sqrt(dev / (n - 1.0)) : 0.0;
  s.stderr_ = s.std / std::sqrt(n);
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < kPercentileLevels.size(); ++i) s.percentiles[i] = percentile_sorted(sorted, kPercentileLevels[i]);
  return s;
}

double log_sum_exp(std::span<const float> values) {
  if (values.empty()) return -std::numeric_limits<double>::infinity();
  double m = -std::numeric_limits<double>::infinity();
  for (float v : values) m = std::max(m, static_cast<double>(v));
  if (!std::isfinite(m)) return m;
  double s = 0.0;
  for (float v : values) s += std::exp(static_cast<double>(v) - m);
  return m + std::log(s);
}

double kl_divergence(std::span<const double> log_p, std::span<const double> log_q) {
  EXPECTS(log_p.size() == log_q.size(), "kl_divergence: rows of different length");
  double kl = 0.0;
  for (size_t j = 0; j < log_p.size(); ++j) {
    const double p = std::exp(log_p[j]);
    if (p > 0.0) kl += p * (log_p[j] - log_q[j]);
  }
  return kl;
}

DivergentTokens divergent_tokens(std::span<const int32_t> reference, std::span<const int32_t> argmax) {
  EXPECTS(reference.size() == argmax.size(), "divergent_tokens: sequences of different length");
  DivergentTokens d;
  const int64_t n = static_cast<int64_t>(reference.size());
  d.fdt = n;
  int64_t differing = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (reference[static_cast<size_t>(i)] != argmax[static_cast<size_t>(i)]) {
      if (differing == 0) d.fdt = i;
      ++differing;
    }
  }
  d.sdt = n > 0 ? static_cast<double>(differing) / static_cast<double>(n) : 0.0;
  return d;
}

int32_t choose(std::span<const double> scores) {
  int32_t best = 0;
  for (size_t i = 1; i < scores.size(); ++i)
    if (scores[i] > scores[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  return best;
}

FlipCounts count_flips(std::span<const int32_t> answer, std::span<const int32_t> base_pred,
                       std::span<const int32_t> pred) {
  EXPECTS(answer.size() == base_pred.size() && answer.size() == pred.size(), "count_flips: arrays of different length");
  FlipCounts f;
  f.items = static_cast<int64_t>(answer.size());
  for (size_t i = 0; i < answer.size(); ++i) {
    const bool b = base_pred[i] == answer[i];
    const bool c = pred[i] == answer[i];
    f.base_correct += b;
    f.correct += c;
    f.correct_to_wrong += b && !c;
    f.wrong_to_correct += !b && c;
  }
  return f;
}

std::vector<double> distributed_kl(Backend& backend, Communicator& comm, const Tensor& logits,
                                   std::span<const float> base_values, std::span<const double> base_offset,
                                   std::span<const double> log_z, bool topk_tail) {
  const size_t n = static_cast<size_t>(logits.dim(0));
  KlPartials p;
  backend.kl_partials(logits, base_values, base_offset, log_z, p);
  // One all-reduce for the four partials.
  std::vector<double> sums(4 * n);
  std::copy(p.kl.begin(), p.kl.end(), sums.begin());
  std::copy(p.base_mass.begin(), p.base_mass.end(), sums.begin() + static_cast<std::ptrdiff_t>(n));
  std::copy(p.model_mass.begin(), p.model_mass.end(), sums.begin() + static_cast<std::ptrdiff_t>(2 * n));
  std::copy(p.model_total.begin(), p.model_total.end(), sums.begin() + static_cast<std::ptrdiff_t>(3 * n));
  comm.allreduce_sum(std::span<double>(sums));
  std::vector<double> kl(n);
  for (size_t i = 0; i < n; ++i) {
    const double base_mass = sums[n + i], model_total = sums[3 * n + i];
    // log p_c = logit - log_z - log(model_total): KL gains log(model_total) per unit of base mass.
    const double log_total = std::log(model_total);
    kl[i] = sums[i] + base_mass * log_total;
    if (topk_tail) {
      const double tail_b = std::max(0.0, 1.0 - base_mass);
      const double tail_c = std::max(1e-300, 1.0 - sums[2 * n + i] / model_total);
      if (tail_b > 0.0) kl[i] += tail_b * (std::log(tail_b) - std::log(tail_c));
    }
  }
  return kl;
}

}  // namespace divprune

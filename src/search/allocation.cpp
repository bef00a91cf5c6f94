#include "search/allocation.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace divprune {

std::vector<double> allocate_inverse_sensitivity(std::span<const double> sensitivity, std::span<const double> sizes,
                                                 double target_pruned, double max_sparsity) {
  EXPECTS(sensitivity.size() == sizes.size(), "one size per sensitivity");
  double total = 0.0;
  for (double n : sizes) total += n;
  if (!(target_pruned >= 0.0) || target_pruned > max_sparsity * total * (1.0 + 1e-12))
    throw InputError(fmt::format("sensitivity allocation: {} parameters to prune, but at most {} can be at max sparsity {}",
                                 target_pruned, max_sparsity * total, max_sparsity));
  const size_t k = sizes.size();
  std::vector<double> weight(k), x(k, 0.0);
  for (size_t i = 0; i < k; ++i) weight[i] = 1.0 / std::max(sensitivity[i], kMinSensitivity);
  std::vector<bool> clipped(k, false);
  // Water-filling: fit α over the free items; clip those above max; repeat until no new item clips.
  for (;;) {
    double left = target_pruned, free_mass = 0.0;
    for (size_t i = 0; i < k; ++i) {
      if (clipped[i]) left -= max_sparsity * sizes[i];
      else free_mass += weight[i] * sizes[i];
    }
    const double alpha = free_mass > 0.0 ? std::max(left, 0.0) / free_mass : 0.0;
    bool changed = false;
    for (size_t i = 0; i < k; ++i) {
      if (clipped[i]) continue;
      x[i] = alpha * weight[i];
      if (x[i] > max_sparsity) {
        clipped[i] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  for (size_t i = 0; i < k; ++i)
    if (clipped[i]) x[i] = max_sparsity;
  return x;
}

std::vector<double> normalised_ranks(std::span<const double> values) {
  const size_t n = values.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> rank(n, 0.0);
  if (n < 2) return rank;
  for (size_t lo = 0; lo < n;) {
    size_t hi = lo;
    while (hi + 1 < n && values[order[hi + 1]] == values[order[lo]]) ++hi;
    // Positions lo..hi tie: each gets their mean, (lo + hi) / 2.
    const double r = (static_cast<double>(lo) + static_cast<double>(hi)) / 2.0 / static_cast<double>(n - 1);
    for (size_t k = lo; k <= hi; ++k) rank[order[k]] = r;
    lo = hi + 1;
  }
  return rank;
}

std::vector<double> allocate_sensitivity_rank(std::span<const double> sensitivity, std::span<const double> sizes,
                                              double target_pruned, double lambda, double max_sparsity) {
  EXPECTS(sensitivity.size() == sizes.size(), "one size per sensitivity");
  EXPECTS(lambda >= 0.0, "a non-negative spread");
  double total = 0.0;
  for (double n : sizes) total += n;
  if (!(target_pruned >= 0.0) || target_pruned > max_sparsity * total * (1.0 + 1e-12))
    throw InputError(fmt::format("sensitivity allocation: {} parameters to prune, but at most {} can be at max sparsity {}",
                                 target_pruned, max_sparsity * total, max_sparsity));
  const size_t k = sizes.size();
  const std::vector<double> rank = normalised_ranks(sensitivity);
  std::vector<double> offset(k);
  for (size_t i = 0; i < k; ++i) offset[i] = lambda * (1.0 - 2.0 * rank[i]);
  auto pruned = [&](double c) {
    double sum = 0.0;
    for (size_t i = 0; i < k; ++i) sum += sizes[i] * std::clamp(c + offset[i], 0.0, max_sparsity);
    return sum;
  };
  // Σ n_i x_i(c) is continuous and non-decreasing in c: 0 at c = −λ, max_sparsity · Σ n_i at c = max_sparsity + λ.
  double lo = -lambda, hi = max_sparsity + lambda;
  for (int it = 0; it < 200 && hi > lo; ++it) {
    const double mid = 0.5 * (lo + hi);
    (pruned(mid) < target_pruned ? lo : hi) = mid;
  }
  double c = 0.5 * (lo + hi);
  // Exact over the items strictly between the bounds at c: Σ_free n_i (c + o_i) + max · Σ_upper n_i = target.
  double free_size = 0.0, rest = target_pruned;
  for (size_t i = 0; i < k; ++i) {
    const double x = c + offset[i];
    if (x >= max_sparsity) rest -= sizes[i] * max_sparsity;
    else if (x > 0.0) {
      free_size += sizes[i];
      rest -= sizes[i] * offset[i];
    }
  }
  if (free_size > 0.0) c = rest / free_size;
  std::vector<double> x(k);
  for (size_t i = 0; i < k; ++i) x[i] = std::clamp(c + offset[i], 0.0, max_sparsity);
  return x;
}

std::vector<double> allocate_owl(std::span<const double> outlier_ratio, double sparsity, double lambda,
                                 double max_sparsity) {
  if (outlier_ratio.empty()) return {};
  const auto [lo, hi] = std::minmax_element(outlier_ratio.begin(), outlier_ratio.end());
  double mean = 0.0;
  for (double d : outlier_ratio) mean += d / static_cast<double>(outlier_ratio.size());
  std::vector<double> x;
  for (double d : outlier_ratio) {
    const double shift = *hi > *lo ? 2.0 * lambda * (mean - d) / (*hi - *lo) : 0.0;
    x.push_back(std::clamp(sparsity + shift, 0.0, max_sparsity));
  }
  return x;
}

double outlier_ratio(std::span<const float> values, double threshold) {
  if (values.empty()) return 0.0;
  double mean = 0.0;
  for (float v : values) mean += std::fabs(static_cast<double>(v));
  mean /= static_cast<double>(values.size());
  size_t outliers = 0;
  for (float v : values) outliers += std::fabs(static_cast<double>(v)) > threshold * mean;
  return static_cast<double>(outliers) / static_cast<double>(values.size());
}

}  // namespace divprune

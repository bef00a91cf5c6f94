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

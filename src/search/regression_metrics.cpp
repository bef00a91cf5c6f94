#include "search/regression_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/errors.hpp"

namespace divprune {

namespace {

std::vector<double> ranks(std::span<const double> values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> out(values.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
    const double average = 0.5 * static_cast<double>(i + j);  // ties share the mean of their positions
    for (size_t k = i; k <= j; ++k) out[order[k]] = average;
    i = j + 1;
  }
  return out;
}

double pearson(std::span<const double> a, std::span<const double> b) {
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n;
  const double mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

}  // namespace

double r_squared(std::span<const double> truth, std::span<const double> predicted) {
  EXPECTS(truth.size() == predicted.size() && !truth.empty(), "r_squared sizes");
  const double mean = std::accumulate(truth.begin(), truth.end(), 0.0) / static_cast<double>(truth.size());
  double residual = 0, total = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    residual += (truth[i] - predicted[i]) * (truth[i] - predicted[i]);
    total += (truth[i] - mean) * (truth[i] - mean);
  }
  return total > 0 ? 1.0 - residual / total : 0.0;
}

double mean_absolute_error(std::span<const double> truth, std::span<const double> predicted) {
  EXPECTS(truth.size() == predicted.size() && !truth.empty(), "mae sizes");
  double sum = 0;
  for (size_t i = 0; i < truth.size(); ++i) sum += std::fabs(truth[i] - predicted[i]);
  return sum / static_cast<double>(truth.size());
}

double spearman_rho(std::span<const double> a, std::span<const double> b) {
  EXPECTS(a.size() == b.size() && a.size() > 1, "spearman sizes");
  const auto ra = ranks(a), rb = ranks(b);
  return pearson(ra, rb);
}

}  // namespace divprune

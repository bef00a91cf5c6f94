#include "metrics/bootstrap.hpp"

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"

namespace divprune {

uint64_t splitmix64_draw(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<int64_t> bootstrap_indices(uint64_t seed, int64_t b, int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  const uint64_t first = static_cast<uint64_t>(b) * static_cast<uint64_t>(n);
  for (int64_t j = 0; j < n; ++j)
    idx[static_cast<size_t>(j)] =
        static_cast<int64_t>(splitmix64_draw(seed, first + static_cast<uint64_t>(j) + 1) % static_cast<uint64_t>(n));
  return idx;
}

const char* paired_statistic_name(PairedStatistic s) {
  return s == PairedStatistic::MeanDifference ? "mean_difference" : "perplexity_difference";
}

double paired_statistic(const std::vector<double>& a, const std::vector<double>& b, PairedStatistic statistic,
                        const std::vector<int64_t>& indices) {
  // Plain left-to-right sums (no pairwise or compensated summation): the documented order numpy's cumsum follows.
  double sa = 0.0, sb = 0.0;
  size_t n = 0;
  if (indices.empty()) {
    for (size_t i = 0; i < a.size(); ++i) {
      sa += a[i];
      sb += b[i];
    }
    n = a.size();
  } else {
    for (int64_t i : indices) {
      sa += a[static_cast<size_t>(i)];
      sb += b[static_cast<size_t>(i)];
    }
    n = indices.size();
  }
  const double ma = sa / static_cast<double>(n), mb = sb / static_cast<double>(n);
  return statistic == PairedStatistic::MeanDifference ? ma - mb : std::exp(ma) - std::exp(mb);
}

double percentile_linear(std::vector<double> values, double q) {
  EXPECTS(!values.empty(), "percentile of no values");
  std::sort(values.begin(), values.end());
  // numpy's "linear" method, operation for operation (so the result is bit-identical): virtual index
  // (n - 1) * (q / 100); between its neighbours a, b with weight t: a + (b - a) t, or b - (b - a)(1 - t) when
  // t >= 0.5.
  const double pos = (static_cast<double>(values.size()) - 1.0) * (q / 100.0);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double t = pos - static_cast<double>(lo);
  const double diff = values[hi] - values[lo];
  return t >= 0.5 ? values[hi] - diff * (1.0 - t) : values[lo] + diff * t;
}

BootstrapInterval paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b,
                                   PairedStatistic statistic, int64_t resamples, uint64_t seed) {
  EXPECTS(a.size() == b.size() && !a.empty(), "paired bootstrap: two non-empty arrays of the same length");
  EXPECTS(resamples >= 1, "paired bootstrap: at least one resample");
  BootstrapInterval r;
  r.resamples = resamples;
  r.seed = seed;
  r.units = static_cast<int64_t>(a.size());
  r.estimate = paired_statistic(a, b, statistic);
  std::vector<double> stats(static_cast<size_t>(resamples));
  for (int64_t k = 0; k < resamples; ++k)
    stats[static_cast<size_t>(k)] = paired_statistic(a, b, statistic, bootstrap_indices(seed, k, r.units));
  r.lower = percentile_linear(stats, 2.5);
  r.upper = percentile_linear(stats, 97.5);
  return r;
}

}  // namespace divprune

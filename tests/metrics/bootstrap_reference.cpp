// Reads a paired bootstrap problem on stdin and prints what metrics/bootstrap.hpp computes, for
// tests/analysis/test_bootstrap_numpy.py (the numpy reimplementation must print the same numbers).
// Input:  statistic(mean_difference|perplexity_difference) resamples seed n, then n values of a, n values of b.
// Output: estimate lower upper (%.17g), then the indices of resample 0 and of resample B-1 (one line each).
#include <cstdio>
#include <iostream>
#include <string>

#include "metrics/bootstrap.hpp"

int main() {
  using namespace divprune;
  std::string statistic;
  int64_t resamples = 0, n = 0;
  uint64_t seed = 0;
  if (!(std::cin >> statistic >> resamples >> seed >> n) || n <= 0 || resamples <= 0) return 2;
  std::vector<double> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (double& x : a) std::cin >> x;
  for (double& x : b) std::cin >> x;
  if (!std::cin) return 2;
  const PairedStatistic s =
      statistic == "perplexity_difference" ? PairedStatistic::PerplexityDifference : PairedStatistic::MeanDifference;
  const BootstrapInterval r = paired_bootstrap(a, b, s, resamples, seed);
  std::printf("%.17g %.17g %.17g\n", r.estimate, r.lower, r.upper);
  for (int64_t k : {int64_t{0}, resamples - 1}) {
    for (int64_t i : bootstrap_indices(seed, k, n)) std::printf("%lld ", static_cast<long long>(i));
    std::printf("\n");
  }
  return 0;
}

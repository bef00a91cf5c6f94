#pragma once
// Paired bootstrap confidence intervals for the difference of an objective between two plans measured on the
// same units (prompts for FDT / SDT, tokens for KL / NLL), written once and used by every comparison the
// held-out summary prints (pipelines/heldout.cpp).
//
// The procedure, exactly (analysis/bootstrap.py and tests/analysis/test_bootstrap_numpy.py replicate it):
//  - Generator: splitmix64 (Steele, Lea, Flood 2014): state_0 = seed; the k-th draw (k = 1, 2, ...) is
//      z = state_0 + k * 0x9E3779B97F4A7C15 (mod 2^64); z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//      z = (z ^ (z >> 27)) * 0x94D049BB133111EB; draw = z ^ (z >> 31).
//  - Resample b (b = 0 .. B-1) takes the n unit indices of draws k = b*n + 1 .. b*n + n, index = draw mod n
//    (the modulo bias is below n / 2^64).
//  - The same indices are applied to both arrays (paired). The statistic of a resample is computed with sums
//    in index order (left to right, in double), mean = sum / n.
//  - Interval: the 2.5th and 97.5th percentiles of the B statistics, linear interpolation between order
//    statistics (numpy.percentile's default); `estimate` is the statistic of the original arrays.
#include <cstdint>
#include <string>
#include <vector>

namespace divprune {

// splitmix64's k-th output (k >= 1) for `seed`, without state: the generator is a counter.
uint64_t splitmix64_draw(uint64_t seed, uint64_t k);
// The n unit indices of resample `b` (see above).
std::vector<int64_t> bootstrap_indices(uint64_t seed, int64_t b, int64_t n);

enum class PairedStatistic {
  MeanDifference,        // mean(a) - mean(b): FDT, SDT (per prompt), KL (per token)
  PerplexityDifference,  // exp(mean(a)) - exp(mean(b)) of per-token NLL: the difference of the perplexities
};
const char* paired_statistic_name(PairedStatistic s);  // "mean_difference", "perplexity_difference"

struct BootstrapInterval {
  double estimate = 0.0;  // the statistic on the original arrays
  double lower = 0.0;     // 2.5th percentile of the resampled statistics
  double upper = 0.0;     // 97.5th percentile
  int64_t resamples = 0;
  uint64_t seed = 0;
  int64_t units = 0;      // n
};

// The statistic of a and b restricted to `indices` (all units when empty).
double paired_statistic(const std::vector<double>& a, const std::vector<double>& b, PairedStatistic statistic,
                        const std::vector<int64_t>& indices = {});
// Paired percentile bootstrap of statistic(a, b). a and b must have the same, non-zero length; resamples >= 1.
BootstrapInterval paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b,
                                   PairedStatistic statistic, int64_t resamples = 2000, uint64_t seed = 1);
// numpy.percentile(values, q) with linear interpolation (values need not be sorted); q in [0, 100].
double percentile_linear(std::vector<double> values, double q);

}  // namespace divprune

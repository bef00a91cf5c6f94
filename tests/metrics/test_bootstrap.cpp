// metrics/bootstrap.hpp: the splitmix64 draws, the resample indices, the paired statistic and the percentile
// interval (its numpy twin: tests/analysis/test_bootstrap_numpy.py).
#include "metrics/bootstrap.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

namespace divprune {
namespace {

TEST(Bootstrap, Splitmix64MatchesTheReferenceSequence) {
  // The first outputs of splitmix64 seeded with 1234567 (Vigna's reference implementation, splitmix64.c).
  EXPECT_EQ(splitmix64_draw(1234567, 1), 6457827717110365317ULL);
  EXPECT_EQ(splitmix64_draw(1234567, 2), 3203168211198807973ULL);
  EXPECT_EQ(splitmix64_draw(1234567, 3), 9817491932198370423ULL);
  EXPECT_EQ(splitmix64_draw(1234567, 4), 4593380528125082431ULL);
  EXPECT_EQ(splitmix64_draw(1234567, 5), 16408922859458223821ULL);
}

TEST(Bootstrap, IndicesAreDrawsModuloN) {
  const auto idx = bootstrap_indices(7, 3, 10);
  ASSERT_EQ(idx.size(), 10u);
  for (int64_t j = 0; j < 10; ++j)
    EXPECT_EQ(idx[static_cast<size_t>(j)], static_cast<int64_t>(splitmix64_draw(7, 3 * 10 + j + 1) % 10));
  // Roughly uniform: every index of 0..9 appears among 2000 draws, none more than twice its share.
  std::vector<int> count(10, 0);
  for (int64_t b = 0; b < 200; ++b)
    for (int64_t i : bootstrap_indices(7, b, 10)) ++count[static_cast<size_t>(i)];
  for (int c : count) {
    EXPECT_GT(c, 100);
    EXPECT_LT(c, 400);
  }
}

TEST(Bootstrap, PercentileIsNumpysLinearInterpolation) {
  // numpy.percentile([3, 1, 4, 1, 5], 2.5) = 1.0, (.., 97.5) = 4.9, (.., 50) = 3.0.
  EXPECT_DOUBLE_EQ(percentile_linear({3, 1, 4, 1, 5}, 2.5), 1.0);
  EXPECT_DOUBLE_EQ(percentile_linear({3, 1, 4, 1, 5}, 97.5), 4.9);
  EXPECT_DOUBLE_EQ(percentile_linear({3, 1, 4, 1, 5}, 50), 3.0);
  EXPECT_DOUBLE_EQ(percentile_linear({2.0}, 97.5), 2.0);
}

TEST(Bootstrap, ConstantDifferenceHasADegenerateInterval) {
  // b = a - 2 on every unit: every resample's mean difference is exactly 2.
  std::vector<double> a{1, 5, 3, 8, 2, 7}, b;
  for (double x : a) b.push_back(x - 2.0);
  const BootstrapInterval r = paired_bootstrap(a, b, PairedStatistic::MeanDifference, 500, 3);
  EXPECT_NEAR(r.estimate, 2.0, 1e-15);
  EXPECT_NEAR(r.lower, 2.0, 1e-14);
  EXPECT_NEAR(r.upper, 2.0, 1e-14);
  EXPECT_EQ(r.units, 6);
  EXPECT_EQ(r.resamples, 500);
}

TEST(Bootstrap, IntervalCoversTheEstimateAndShrinksWithN) {
  // Independent noise: the interval brackets the estimate; 16x the units, about 1/4 the width.
  auto make = [](int64_t n, std::vector<double>& a, std::vector<double>& b) {
    a.clear();
    b.clear();
    for (int64_t i = 0; i < n; ++i) {
      a.push_back(static_cast<double>(splitmix64_draw(11, static_cast<uint64_t>(i) + 1) % 1000) / 100.0);
      b.push_back(static_cast<double>(splitmix64_draw(12, static_cast<uint64_t>(i) + 1) % 1000) / 100.0);
    }
  };
  std::vector<double> a, b;
  make(50, a, b);
  const BootstrapInterval small = paired_bootstrap(a, b, PairedStatistic::MeanDifference, 2000, 1);
  make(800, a, b);
  const BootstrapInterval large = paired_bootstrap(a, b, PairedStatistic::MeanDifference, 2000, 1);
  for (const auto& r : {small, large}) {
    EXPECT_LT(r.lower, r.estimate);
    EXPECT_GT(r.upper, r.estimate);
  }
  const double ratio = (small.upper - small.lower) / (large.upper - large.lower);
  EXPECT_GT(ratio, 3.0);
  EXPECT_LT(ratio, 5.3);
}

TEST(Bootstrap, PerplexityDifferenceIsOfExpMeanNll) {
  const std::vector<double> a{1.0, 2.0, 3.0}, b{0.5, 0.5, 2.0};
  EXPECT_DOUBLE_EQ(paired_statistic(a, b, PairedStatistic::PerplexityDifference), std::exp(2.0) - std::exp(1.0));
  EXPECT_DOUBLE_EQ(paired_statistic(a, b, PairedStatistic::MeanDifference, {0, 0, 2}), (5.0 / 3) - (3.0 / 3));
}

}  // namespace
}  // namespace divprune

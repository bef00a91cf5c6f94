// The search's acquisition (search/acquisition.hpp): the bootstrap ensemble's mean and std on a synthetic
// regression (deterministic from its seed), and the diversity rule of a round's picks.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/errors.hpp"
#include "search/acquisition.hpp"
#include "search/regression_metrics.hpp"

namespace divprune {
namespace {

double target(std::span<const float> f) { return 2.0 * std::sin(3.0 * f[0]) + 4.0 * f[1] * f[1] - 1.5 * f[2]; }

FeatureMatrix sample(size_t rows, uint64_t seed, std::vector<double>* y) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  FeatureMatrix x{rows, 4, {}};
  for (size_t i = 0; i < rows * 4; ++i) x.values.push_back(u(rng));
  for (size_t r = 0; r < rows; ++r) y->push_back(target(x.row(r)));
  return x;
}

PredictorParams small_params() {
  PredictorParams p;
  p.rounds = 100;
  p.seed = 3;
  return p;
}

TEST(PredictorEnsemble, MeanFitsAndStdIsTheSpreadOfTheBoosters) {
  std::vector<double> y;
  const FeatureMatrix x = sample(200, 7, &y);
  const PredictorEnsemble ensemble = PredictorEnsemble::train(x, y, small_params(), 4);
  ASSERT_EQ(ensemble.size(), 4u);
  std::vector<double> fresh_y;
  const FeatureMatrix fresh = sample(100, 99, &fresh_y);
  const PredictorEnsemble::Prediction p = ensemble.predict(fresh);
  ASSERT_EQ(p.mean.size(), 100u);
  EXPECT_GT(r_squared(fresh_y, p.mean), 0.8);
  // Bootstrap resamples disagree a little everywhere, far less than the target's spread (about 1.6).
  double mean_std = 0.0;
  for (double s : p.std) {
    EXPECT_GT(s, 0.0);
    mean_std += s / 100.0;
  }
  EXPECT_LT(mean_std, 0.5);
  // Deterministic: the same seed gives the same ensemble, another seed another one.
  const PredictorEnsemble::Prediction again = PredictorEnsemble::train(x, y, small_params(), 4).predict(fresh);
  EXPECT_EQ(again.mean, p.mean);
  EXPECT_EQ(again.std, p.std);
  PredictorParams other = small_params();
  other.seed = 4;
  EXPECT_NE(PredictorEnsemble::train(x, y, other, 4).predict(fresh).mean, p.mean);
}

TEST(PredictorEnsemble, MeanAndStdOverTheBoosters) {
  // Booster b of an ensemble with seed s is the single booster of an ensemble with seed s + b (same resample,
  // same XGBoost seed), so a 2-booster ensemble is the mean and (B − 1) sample std of two 1-booster ones.
  std::vector<double> y;
  const FeatureMatrix x = sample(50, 1, &y);
  PredictorParams p0 = small_params(), p1 = small_params();
  p1.seed = p0.seed + 1;
  const PredictorEnsemble::Prediction a = PredictorEnsemble::train(x, y, p0, 1).predict(x);
  const PredictorEnsemble::Prediction b = PredictorEnsemble::train(x, y, p1, 1).predict(x);
  const PredictorEnsemble::Prediction two = PredictorEnsemble::train(x, y, p0, 2).predict(x);
  for (size_t r = 0; r < x.rows; ++r) {
    EXPECT_EQ(a.std[r], 0.0);  // one booster: no spread
    EXPECT_NEAR(two.mean[r], 0.5 * (a.mean[r] + b.mean[r]), 1e-12);
    EXPECT_NEAR(two.std[r], std::abs(a.mean[r] - b.mean[r]) / std::sqrt(2.0), 1e-12);
  }
  EXPECT_THROW(PredictorEnsemble::train(x, y, p0, 0), InputError);
}

TEST(Acquisition, DistanceIsEuclidean) {
  const std::vector<float> a = {0.5f, 1.0f, 0.0f}, b = {0.2f, 1.0f, 1.0f};
  EXPECT_NEAR(plan_feature_distance(a, b), std::sqrt(0.09 + 1.0), 1e-6);
  EXPECT_EQ(plan_feature_distance(a, a), 0.0);
}

TEST(Acquisition, DiversityRuleKeepsPicksApart) {
  // 40 rows in 3 clusters of near-identical rows, best first in random order.
  std::mt19937_64 rng(5);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  FeatureMatrix x{40, 5, {}};
  for (size_t r = 0; r < 40; ++r)
    for (size_t c = 0; c < 5; ++c) x.values.push_back((c == r % 3 ? 1.0f : 0.0f) + noise(rng));
  std::vector<bool> eligible(40, true);
  eligible[1] = false;
  const double d = 0.5;
  const std::vector<size_t> picks = pick_diverse(x, eligible, 8, d);
  // Only one plan per cluster survives: rows 0 (cluster 0), 2 (cluster 2; row 1 is not eligible), 4 (cluster 1).
  EXPECT_EQ(picks, (std::vector<size_t>{0, 2, 4}));
  for (size_t i = 0; i < picks.size(); ++i)
    for (size_t j = i + 1; j < picks.size(); ++j) EXPECT_GE(plan_feature_distance(x.row(picks[i]), x.row(picks[j])), d);
  // Distance 0 is the point search's rule: the first eligible rows, best first.
  EXPECT_EQ(pick_diverse(x, eligible, 4, 0.0), (std::vector<size_t>{0, 2, 3, 4}));
}

}  // namespace
}  // namespace divprune

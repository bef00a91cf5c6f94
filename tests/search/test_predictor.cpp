// The predictor recovers a known function from sampled pairs, and its scores are computed correctly.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "search/predictor.hpp"
#include "search/regression_metrics.hpp"

namespace divprune {
namespace {

// A smooth, non-linear, interacting target over 6 features in [0, 1); two features are pure noise.
double target(std::span<const float> f) {
  return 2.0 * std::sin(3.0 * f[0]) + 4.0 * f[1] * f[1] - 1.5 * f[2] + 2.0 * f[0] * f[3];
}

FeatureMatrix sample(size_t rows, uint64_t seed, std::vector<double>* y) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  FeatureMatrix x{rows, 6, {}};
  for (size_t i = 0; i < rows * 6; ++i) x.values.push_back(u(rng));
  for (size_t r = 0; r < rows; ++r) y->push_back(target(x.row(r)));
  return x;
}

TEST(Predictor, RecoversSyntheticFunction) {
  std::vector<double> y;
  const FeatureMatrix x = sample(600, 7, &y);
  PredictorParams params;
  const PredictorScores cv = cross_validate(x, y, params, 5);
  EXPECT_GT(cv.r2, 0.9);
  EXPECT_GT(cv.spearman, 0.9);
  // A model trained on everything predicts fresh points well too.
  Predictor model = Predictor::train(x, y, params);
  std::vector<double> fresh_y;
  const FeatureMatrix fresh = sample(300, 99, &fresh_y);
  EXPECT_GT(r_squared(fresh_y, model.predict(fresh)), 0.9);
  // Noise features 4 and 5 carry far less gain than the signal features.
  const std::vector<double> gain = model.feature_gain(6);
  EXPECT_LT(gain[4] + gain[5], 0.05 * (gain[0] + gain[1] + gain[2]));
  EXPECT_NE(model.model_json().find("\"learner\""), std::string::npos);
}

TEST(RegressionMetrics, MatchDirectFormulas) {
  const std::vector<double> truth = {1, 2, 3, 4, 5};
  const std::vector<double> pred = {1.5, 2, 2.5, 4, 6};
  // residuals 0.25+0+0.25+0+1 = 1.5; total variance 10
  EXPECT_DOUBLE_EQ(r_squared(truth, pred), 1.0 - 1.5 / 10.0);
  EXPECT_DOUBLE_EQ(mean_absolute_error(truth, pred), (0.5 + 0 + 0.5 + 0 + 1) / 5.0);
  EXPECT_DOUBLE_EQ(spearman_rho(truth, pred), 1.0);  // same order
  const std::vector<double> reversed = {5, 4, 3, 2, 1};
  EXPECT_DOUBLE_EQ(spearman_rho(truth, reversed), -1.0);
  // ties: ranks of {1, 1, 2} are {0.5, 0.5, 2}
  const std::vector<double> a = {1, 1, 2}, b = {1, 2, 3};
  EXPECT_NEAR(spearman_rho(a, b), 0.8660254037844386, 1e-12);
}

}  // namespace
}  // namespace divprune

// The baselines' sparsity allocations (search/allocation.hpp) on hand-made tables: exact sparsities, and the
// budget met.
#include <gtest/gtest.h>

#include <numeric>

#include "core/errors.hpp"
#include "search/allocation.hpp"

namespace divprune {
namespace {

double pruned(const std::vector<double>& x, const std::vector<double>& n) {
  double sum = 0.0;
  for (size_t i = 0; i < x.size(); ++i) sum += x[i] * n[i];
  return sum;
}

TEST(SensitivityAllocation, InverseSensitivityWaterFilledUnderTheClip) {
  // Weights 1/s: 2, 4, 10, and 1/1e-3 = 1000 for the component whose pruning changed nothing (s = 0).
  const std::vector<double> s = {0.5, 0.25, 0.1, 0.0}, n = {100, 100, 200, 100};
  // Half of 500 parameters: the s = 0 item clips at 0.9 (90 pruned), the other 160 go as α = 160 / (2·100 +
  // 4·100 + 10·200) = 160 / 2600 times each weight.
  std::vector<double> x = allocate_inverse_sensitivity(s, n, 250.0, 0.9);
  ASSERT_EQ(x.size(), 4u);
  EXPECT_NEAR(x[0], 2.0 * 160.0 / 2600.0, 1e-12);
  EXPECT_NEAR(x[1], 4.0 * 160.0 / 2600.0, 1e-12);
  EXPECT_NEAR(x[2], 10.0 * 160.0 / 2600.0, 1e-12);
  EXPECT_EQ(x[3], 0.9);
  EXPECT_NEAR(pruned(x, n), 250.0, 1e-9);
  // 400 of 500: the third item clips too in the second pass (α = 310/2600 gives it 1.19); the last 130 go as
  // α = 130 / 600.
  x = allocate_inverse_sensitivity(s, n, 400.0, 0.9);
  EXPECT_NEAR(x[0], 2.0 * 130.0 / 600.0, 1e-12);
  EXPECT_NEAR(x[1], 4.0 * 130.0 / 600.0, 1e-12);
  EXPECT_EQ(x[2], 0.9);
  EXPECT_EQ(x[3], 0.9);
  EXPECT_NEAR(pruned(x, n), 400.0, 1e-9);
  // More sensitive, pruned less.
  EXPECT_LT(x[0], x[1]);
  // Nothing to prune; everything at the clip; beyond the clip.
  for (double v : allocate_inverse_sensitivity(s, n, 0.0, 0.9)) EXPECT_EQ(v, 0.0);
  for (double v : allocate_inverse_sensitivity(s, n, 450.0, 0.9)) EXPECT_NEAR(v, 0.9, 1e-12);
  EXPECT_THROW(allocate_inverse_sensitivity(s, n, 460.0, 0.9), InputError);
}

TEST(OwlAllocation, LayersWithMoreOutliersPrunedLess) {
  // D = 1%, 3%, 2%, 6%: mean 3%, range 5%; x_l = 0.5 + 2·0.08·(0.03 − D_l)/0.05.
  const std::vector<double> d = {0.01, 0.03, 0.02, 0.06};
  const std::vector<double> x = allocate_owl(d, 0.5, 0.08, 0.95);
  ASSERT_EQ(x.size(), 4u);
  EXPECT_NEAR(x[0], 0.564, 1e-12);
  EXPECT_NEAR(x[1], 0.500, 1e-12);
  EXPECT_NEAR(x[2], 0.532, 1e-12);
  EXPECT_NEAR(x[3], 0.404, 1e-12);
  // Equal layer sizes: the mean sparsity is the budget, and the spread is 2λ.
  EXPECT_NEAR(std::accumulate(x.begin(), x.end(), 0.0) / 4.0, 0.5, 1e-12);
  EXPECT_NEAR(x[0] - x[3], 0.16, 1e-12);
  // No outlier contrast: uniform.
  for (double v : allocate_owl(std::vector<double>{0.02, 0.02}, 0.5, 0.08, 0.95)) EXPECT_EQ(v, 0.5);
}

TEST(OwlAllocation, OutlierRatio) {
  // mean |x| = (9·1 + 11)/10 = 2; only |11| > 5·2.
  std::vector<float> v(9, 1.0f);
  v.push_back(-11.0f);
  EXPECT_DOUBLE_EQ(outlier_ratio(v, 5.0), 0.1);
  EXPECT_DOUBLE_EQ(outlier_ratio(v, 6.0), 0.0);
  EXPECT_DOUBLE_EQ(outlier_ratio(std::vector<float>{}, 5.0), 0.0);
}

}  // namespace
}  // namespace divprune

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

TEST(SensitivityAllocation, RankSpreadShiftedToTheBudget) {
  // Ranks in increasing s: 0.0 -> 0, 0.1 -> 1/3, 0.25 -> 2/3, 0.5 -> 1; with λ = 0.1 the offsets λ(1 − 2r) are
  // -0.1, -1/30, 1/30, 0.1 (in item order) and Σ n_i o_i = -10 - 10/3 + 20/3 + 10 = 10/3.
  const std::vector<double> s = {0.5, 0.25, 0.1, 0.0}, n = {100, 100, 200, 100};
  EXPECT_EQ(normalised_ranks(s), (std::vector<double>{1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0}));
  // Half of 500: nothing clips, c = (250 − 10/3) / 500.
  std::vector<double> x = allocate_sensitivity_rank(s, n, 250.0, 0.1, 0.9);
  ASSERT_EQ(x.size(), 4u);
  const double c = (250.0 - 10.0 / 3.0) / 500.0;
  EXPECT_NEAR(x[0], c - 0.1, 1e-12);
  EXPECT_NEAR(x[1], c - 1.0 / 30.0, 1e-12);
  EXPECT_NEAR(x[2], c + 1.0 / 30.0, 1e-12);
  EXPECT_NEAR(x[3], c + 0.1, 1e-12);
  EXPECT_NEAR(pruned(x, n), 250.0, 1e-9);
  EXPECT_NEAR(x[3] - x[0], 0.2, 1e-12);  // the spread is 2λ
  // 440 of 500: items 2 and 3 clip at 0.9 (270 pruned), the other 170 come from 200c − 10 − 10/3: c = 0.91667.
  x = allocate_sensitivity_rank(s, n, 440.0, 0.1, 0.9);
  EXPECT_NEAR(x[0], 550.0 / 600.0 - 0.1, 1e-12);
  EXPECT_NEAR(x[1], 550.0 / 600.0 - 1.0 / 30.0, 1e-12);
  EXPECT_EQ(x[2], 0.9);
  EXPECT_EQ(x[3], 0.9);
  EXPECT_NEAR(pruned(x, n), 440.0, 1e-9);
  // Low targets clip at 0: 20 of 500 with λ = 0.1 leaves the most sensitive items dense.
  x = allocate_sensitivity_rank(s, n, 20.0, 0.1, 0.9);
  EXPECT_EQ(x[0], 0.0);
  EXPECT_NEAR(pruned(x, n), 20.0, 1e-9);
  // Ties share their rank (positions 0 and 1: r = 0.5 / 2), so equally insensitive items get equal sparsities.
  EXPECT_EQ(normalised_ranks(std::vector<double>{0.0, 0.0, 0.2}), (std::vector<double>{0.25, 0.25, 1.0}));
  EXPECT_EQ(normalised_ranks(std::vector<double>{0.3}), (std::vector<double>{0.0}));
  // λ = 0: uniform.
  for (double v : allocate_sensitivity_rank(s, n, 250.0, 0.0, 0.9)) EXPECT_NEAR(v, 0.5, 1e-12);
  EXPECT_THROW(allocate_sensitivity_rank(s, n, 460.0, 0.1, 0.9), InputError);
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

// Sampling respects the budget, and the evolutionary search finds the optimum of a known objective.
#include <gtest/gtest.h>

#include <cmath>

#include "core/errors.hpp"
#include "search/evolution.hpp"
#include "search/space.hpp"

namespace divprune {
namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_layers = 4;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_seq_len = 256;
  c.source = "test";
  return c;
}

TEST(PlanSampler, EverySampledMutatedAndCrossedPlanIsInsideTheBudget) {
  SearchSpace space;
  space.methods = {PruneMethod::Magnitude, PruneMethod::MagnitudeRow, PruneMethod::Channels};
  space.int8 = true;
  space.removable_layers = {1, 2};
  space.max_removed_layers = 1;
  const Budget budget{0.5, 0.02};
  PlanSampler sampler(space, small_config(), budget);
  std::mt19937_64 rng(3);
  std::vector<CompressionPlan> plans;
  for (int i = 0; i < 200; ++i) plans.push_back(sampler.sample(rng));
  for (int i = 0; i < 200; ++i) plans.push_back(sampler.mutate(plans[static_cast<size_t>(i)], rng));
  for (int i = 0; i < 200; ++i) plans.push_back(sampler.crossover(plans[static_cast<size_t>(i)], plans[static_cast<size_t>(399 - i)], rng));
  int with_drop = 0;
  for (const auto& p : plans) {
    const double s = plan_size(p, small_config()).sparsity;
    EXPECT_NEAR(s, 0.5, 0.02 + 1e-12);
    EXPECT_LE(p.dropped_layers().size(), 1u);
    with_drop += p.dropped_layers().empty() ? 0 : 1;
    EXPECT_NO_THROW(validate_plan(p, small_config(), "sampled"));
  }
  EXPECT_GT(with_drop, 0);  // the space's layer removal is actually explored
  EXPECT_NEAR(plan_size(sampler.uniform(), small_config()).sparsity, 0.5, 0.02);
}

TEST(PlanSampler, UnreachableBudgetIsAClearError) {
  SearchSpace space;
  space.sparsity_levels = {0.0, 0.1};
  PlanSampler sampler(space, small_config(), Budget{0.7, 0.01});
  std::mt19937_64 rng(1);
  EXPECT_THROW(sampler.sample(rng), InputError);
}

// Known objective: each component type has a cost weight; the cost of a plan is Σ weight_c · s_c² · n_c.
// Under a fixed total of zeros the optimum puts sparsity where weights are small: here attention (weight 1)
// is cheap and MLP (weight 4) is expensive, so the best plans prune attention harder than the MLP.
double synthetic_cost(const CompressionPlan& plan, const ModelConfig& config) {
  double cost = 0.0;
  for (int64_t l = 0; l < config.num_layers; ++l)
    for (Component c : kAllComponents) {
      const auto& comp = plan.at(l, c);
      const double s = comp.prune ? comp.prune->sparsity : 0.0;
      const auto shape = component_shape(c, config);
      const double weight = (c == Component::Gate || c == Component::Up || c == Component::Down) ? 4.0 : 1.0;
      cost += weight * s * s * static_cast<double>(shape[0] * shape[1]);
    }
  return cost;
}

TEST(Evolution, FindsTheOptimumOfASyntheticObjective) {
  const ModelConfig config = small_config();
  SearchSpace space;
  space.sparsity_levels = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  const Budget budget{0.5, 0.02};
  PlanSampler sampler(space, config, budget);
  const PlanScorer scorer = [&](const std::vector<CompressionPlan>& plans) {
    std::vector<double> out;
    for (const auto& p : plans) out.push_back(synthetic_cost(p, config));
    return out;
  };
  std::mt19937_64 rng(5);
  std::vector<CompressionPlan> samples;
  double best_random = 1e300;
  for (int i = 0; i < 64; ++i) {
    samples.push_back(sampler.sample(rng));
    best_random = std::min(best_random, synthetic_cost(samples.back(), config));
  }
  EvolutionParams params;
  params.generations = 60;
  params.seed = 11;
  const auto result = evolve(sampler, samples, scorer, params);
  ASSERT_FALSE(result.empty());
  const CompressionPlan& best = result.front().plan;
  EXPECT_TRUE(sampler.fits(best));
  // Continuous optimum (Lagrange): s_c ∝ 1/weight_c with Σ s_c n_c = 0.5 N. Attention entries
  // n_a = 4·(64·64 + 2·32·64 + 64·64) = 49152, MLP n_m = 4·3·64·176 = 135168, N = 184320:
  // s_a = 4 s_m, s_a n_a + s_m n_m = 92160 → s_m = 92160 / (4·49152 + 135168) = 0.2769, s_a = 1.108 > 0.9,
  // so attention saturates at the top level 0.9 and s_m = (92160 − 0.9·49152) / 135168 = 0.3545.
  const double optimum = 49152.0 * 0.81 + 4.0 * 135168.0 * 0.3545 * 0.3545;
  EXPECT_LT(result.front().score, best_random);
  EXPECT_LT(result.front().score, 1.05 * optimum) << "best " << result.front().score << " optimum " << optimum;
  // And the plan has the optimum's shape: attention pruned harder than the MLP.
  double attention = 0, mlp = 0;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    attention += best.at(l, Component::Q).prune ? best.at(l, Component::Q).prune->sparsity : 0.0;
    mlp += best.at(l, Component::Up).prune ? best.at(l, Component::Up).prune->sparsity : 0.0;
  }
  EXPECT_GT(attention, mlp);
}

}  // namespace
}  // namespace divprune

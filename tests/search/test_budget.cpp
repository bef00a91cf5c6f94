// The budget kinds of search/space.hpp: the sampler, mutation, crossover and uniform reference honour a bytes
// budget (compress/storage.hpp) and a parameter-count budget, and int8 is traded against pruning under bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "compress/storage.hpp"
#include "core/errors.hpp"
#include "core/sha256.hpp"
#include "search/space.hpp"
#include "tests/support/model_shapes.hpp"

namespace divprune {
namespace {

// 4 layers, hidden 64, intermediate 128, 4 heads, 2 KV heads, vocabulary 512 (the embeddings, 30% of the
// parameters, do not swamp the parameter budget).
ModelConfig small_model() { return test::llama_shape(4, 64, 128, 4, 2, 512); }

// 200 samples, 200 mutations of them and 200 crossovers.
std::vector<CompressionPlan> draw(const PlanSampler& sampler, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<CompressionPlan> plans;
  for (int i = 0; i < 200; ++i) plans.push_back(sampler.sample(rng));
  for (int i = 0; i < 200; ++i) plans.push_back(sampler.mutate(plans[static_cast<size_t>(i)], rng));
  for (int i = 0; i < 200; ++i)
    plans.push_back(sampler.crossover(plans[static_cast<size_t>(i)], plans[static_cast<size_t>(399 - i)], rng));
  return plans;
}

double int8_share(const CompressionPlan& plan) {
  int n = 0, q = 0;
  for (const LayerPlan& l : plan.layers)
    for (const ComponentPlan& c : l.components) {
      ++n;
      q += c.quant == QuantMethod::Int8 ? 1 : 0;
    }
  return static_cast<double>(q) / n;
}

TEST(Budget, BytesBudgetTradesInt8AgainstPruning) {
  const ModelConfig model = small_model();
  SearchSpace space;
  space.methods = {PruneMethod::Magnitude, PruneMethod::MagnitudeRow};
  space.int8 = true;
  space.removable_layers = {1, 2};
  space.max_removed_layers = 1;
  Budget budget;
  budget.kind = BudgetKind::Bytes;
  budget.fraction = 0.35;
  budget.tolerance = 0.01;
  const PlanSampler sampler(space, model, budget);
  const std::vector<CompressionPlan> plans = draw(sampler, 5);
  double min_sparsity = 1.0, max_sparsity = 0.0;
  std::vector<double> share, sparsity;
  for (const CompressionPlan& p : plans) {
    const double bytes = plan_storage_bytes(p, model).fraction();
    EXPECT_NEAR(bytes, 0.35, 0.01 + 1e-12);
    EXPECT_EQ(budget_measure(p, model, BudgetKind::Bytes), bytes);
    EXPECT_NO_THROW(validate_plan(p, model, "sampled"));
    const double s = plan_size(p, model).sparsity;
    min_sparsity = std::min(min_sparsity, s);
    max_sparsity = std::max(max_sparsity, s);
    share.push_back(int8_share(p));
    sparsity.push_back(s);
  }
  // The trade-off: linear sparsity is free to move (int8 pays for keeping entries), and plans with more int8
  // components are less sparse (negative correlation between the int8 share and the linear sparsity).
  EXPECT_GT(max_sparsity - min_sparsity, 0.2) << min_sparsity << " .. " << max_sparsity;
  const double n = static_cast<double>(share.size());
  double ms = 0, mp = 0;
  for (size_t i = 0; i < share.size(); ++i) ms += share[i] / n, mp += sparsity[i] / n;
  double cov = 0, vs = 0, vp = 0;
  for (size_t i = 0; i < share.size(); ++i) {
    cov += (share[i] - ms) * (sparsity[i] - mp);
    vs += (share[i] - ms) * (share[i] - ms);
    vp += (sparsity[i] - mp) * (sparsity[i] - mp);
  }
  const double corr = cov / std::sqrt(vs * vp);
  std::printf("[ measured ] bytes budget 0.35 ± 0.01: linear sparsity %.3f .. %.3f, corr(int8 share, sparsity) %.3f\n",
              min_sparsity, max_sparsity, corr);
  EXPECT_LT(corr, -0.5);

  // The uniform reference: no quantization, the smallest sparsity in steps of 1e-4 that meets the bytes target.
  const CompressionPlan uniform = sampler.uniform();
  EXPECT_TRUE(sampler.fits(uniform));
  const double s = uniform.at(0, Component::Q).prune->sparsity;
  for (const LayerPlan& l : uniform.layers)
    for (const ComponentPlan& c : l.components) {
      EXPECT_EQ(c.quant, QuantMethod::None);
      ASSERT_TRUE(c.prune);
      EXPECT_EQ(c.prune->sparsity, s);
    }
  EXPECT_LE(plan_storage_bytes(uniform, model).fraction(), 0.35);
  CompressionPlan less = uniform;
  for (LayerPlan& l : less.layers)
    for (ComponentPlan& c : l.components) c.prune->sparsity = s - 1e-4;
  EXPECT_GT(plan_storage_bytes(less, model).fraction(), 0.35);
  // By hand: every component sparse at s costs a 1/16 bitmap plus (1 − s) of its fp16 bytes, so s ≈ 1 − (0.35 − 1/16).
  EXPECT_NEAR(s, 1.0 - (0.35 - 1.0 / 16.0), 2e-3);
}

TEST(Budget, ParameterBudgetForLayerRemoval) {
  const ModelConfig model = small_model();
  // A layer-removal-only space: at a budget of "one layer fewer", every plan removes exactly one layer.
  SearchSpace space;
  space.sparsity_levels = {0.0};
  space.removable_layers = {1, 2, 3};
  space.max_removed_layers = 2;
  CompressionPlan one_removed = CompressionPlan::identity(model.num_layers);
  one_removed.layers[2].removed = true;
  const double kept = static_cast<double>(plan_size(one_removed, model).parameters) / static_cast<double>(model.parameter_count());
  // By hand: a layer holds its linear entries and two norms of hidden size.
  EXPECT_DOUBLE_EQ(kept, 1.0 - static_cast<double>(model.layer_linear_parameters() + 2 * model.hidden_size) /
                                   static_cast<double>(model.parameter_count()));
  Budget budget;
  budget.kind = BudgetKind::Parameters;
  budget.fraction = kept;
  budget.tolerance = 1e-6;
  const PlanSampler sampler(space, model, budget);
  std::set<int64_t> removed;
  for (const CompressionPlan& p : draw(sampler, 7)) {
    ASSERT_EQ(p.dropped_layers().size(), 1u);
    removed.insert(p.dropped_layers()[0]);
    EXPECT_NEAR(budget_measure(p, model, BudgetKind::Parameters), kept, 1e-6);
  }
  EXPECT_EQ(removed, (std::set<int64_t>{1, 2, 3}));

  // Mixed with pruning: removed layers and zeroed entries both count.
  space.sparsity_levels = {0.0, 0.2, 0.4, 0.6};
  space.max_removed_layers = 1;
  budget.fraction = 0.8;
  budget.tolerance = 0.01;
  const PlanSampler mixed(space, model, budget);
  int with_drop = 0;
  for (const CompressionPlan& p : draw(mixed, 9)) {
    EXPECT_NEAR(budget_measure(p, model, BudgetKind::Parameters), 0.8, 0.01 + 1e-12);
    with_drop += p.dropped_layers().empty() ? 0 : 1;
  }
  EXPECT_GT(with_drop, 0);
  EXPECT_TRUE(mixed.fits(mixed.uniform()));
}

TEST(Budget, SparsityIsTheDefaultKindAndBadFractionsAreRefused) {
  const ModelConfig model = small_model();
  const Budget plain{0.5, 0.02};
  EXPECT_EQ(plain.kind, BudgetKind::Sparsity);
  EXPECT_EQ(plain.target(), 0.5);
  EXPECT_EQ(budget_description(plain), "linear sparsity 0.500 ± 0.020");
  Budget bytes;
  bytes.kind = BudgetKind::Bytes;
  for (double bad : {0.0, -0.1, 1.5, std::nan("")}) {
    bytes.fraction = bad;
    EXPECT_THROW(validate_space(SearchSpace{}, model, bytes), InputError) << bad;
  }
  // An unreachable bytes budget: no level prunes enough.
  SearchSpace space;
  space.sparsity_levels = {0.0, 0.1};
  bytes.fraction = 0.3;
  bytes.tolerance = 0.01;
  const PlanSampler sampler(space, model, bytes);
  std::mt19937_64 rng(1);
  try {
    (void)sampler.sample(rng);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("stored bytes 0.300 ± 0.010 of dense fp16"), std::string::npos) << e.what();
  }
}

// The budget kinds leave the sparsity budget's draws alone: the uniform reference, 40 samples, 40 mutations and 40
// crossovers on tiny-llama2-trained's shape hash to what the sampler drew before the kinds existed (digests
// printed by the same loop built against the previous src/search/space.cpp), so plan ids and archives of
// existing configurations do not change.
TEST(Budget, SparsityBudgetDrawsAreThoseOfBeforeTheKinds) {
  const ModelConfig model = test::llama_shape(6, 256, 688, 8, 8);
  SearchSpace space;
  space.methods = {PruneMethod::Magnitude, PruneMethod::MagnitudeRow};
  space.int8 = true;
  space.removable_layers = {1, 2, 3, 4};
  space.max_removed_layers = 1;
  const std::vector<std::pair<double, std::string>> cases = {
      {0.005, "80728f8ef004a29a55f12db035351ae734df6d12d4c480f835c6c9ec7d7821a3"},
      {0.04, "7cfcb52f5023bad390f1d7539d06a99122f248ef6108c4731889aa8531da0765"}};
  for (const auto& [tolerance, digest] : cases) {
    const PlanSampler sampler(space, model, Budget{0.5, tolerance});
    std::mt19937_64 rng(3);
    std::string all = plan_to_yaml(sampler.uniform());
    std::vector<CompressionPlan> p;
    for (int i = 0; i < 40; ++i) p.push_back(sampler.sample(rng));
    for (int i = 0; i < 40; ++i) p.push_back(sampler.mutate(p[static_cast<size_t>(i)], rng));
    for (int i = 0; i < 40; ++i) p.push_back(sampler.crossover(p[static_cast<size_t>(i)], p[static_cast<size_t>(79 - i)], rng));
    for (const CompressionPlan& x : p) all += plan_to_yaml(x);
    EXPECT_EQ(sha256_hex(all), digest) << "tolerance " << tolerance;
  }
}

}  // namespace
}  // namespace divprune

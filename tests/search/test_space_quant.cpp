// A quantization choice per component in the search space (issue 16: space.quant): the sampler draws every
// choice, only where it fits (group size dividing the component's columns), mutation keeps to the list, and the
// calibrated feature vector records the choice (compress/FEATURES.md: int8 in the block, gptq / rtn, bits, group
// size, sym, act-order in the tail) and decodes back to it.
#include <gtest/gtest.h>

#include <map>

#include "core/errors.hpp"
#include "search/space.hpp"

namespace divprune {
namespace {

// tiny-llama2-trained's shape: down_proj has 688 input columns, which group size 128 does not divide.
ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_layers = 3;
  c.num_heads = 8;
  c.num_kv_heads = 8;
  c.head_dim = 32;
  c.max_seq_len = 256;
  c.source = "test";
  return c;
}

QuantChoice grid(QuantMethod m, int bits, int64_t group, bool act_order = false) {
  QuantChoice q;
  q.method = m;
  q.params.bits = bits;
  q.params.group_size = group;
  q.params.act_order = act_order;
  return q;
}

TEST(SpaceQuant, EveryChoiceIsDrawnWhereItFitsAndRecordedInTheFeatures) {
  const ModelConfig config = tiny_config();
  SearchSpace space;
  space.methods = {PruneMethod::Magnitude, PruneMethod::Wanda};
  space.quant = {QuantChoice{}, QuantChoice{QuantMethod::Int8, {}}, grid(QuantMethod::Gptq, 4, 128),
                 grid(QuantMethod::Rtn, 3, -1), grid(QuantMethod::Gptq, 3, 16, true)};
  PlanSampler sampler(space, config, Budget{0.4, 0.03});
  std::mt19937_64 rng(5);
  std::map<std::pair<int, Component>, int> drawn;  // (choice index, component) -> count
  std::vector<CompressionPlan> plans;
  for (int i = 0; i < 40; ++i) plans.push_back(sampler.sample(rng));
  for (int i = 0; i < 40; ++i) plans.push_back(sampler.mutate(plans[static_cast<size_t>(i)], rng));
  for (const CompressionPlan& p : plans) {
    EXPECT_TRUE(sampler.fits(p));
    for (int64_t l = 0; l < config.num_layers; ++l)
      for (Component c : kAllComponents) {
        const ComponentPlan& cp = p.at(l, c);
        QuantChoice got{cp.quant, cp.quant_params};
        int index = -1;
        for (size_t k = 0; k < space.quant.size(); ++k)
          if (space.quant[k] == got) index = static_cast<int>(k);
        ASSERT_GE(index, 0) << "a quantization outside the space at layer " << l << " " << component_name(c);
        ++(drawn[{index, c}]);
      }
    // The calibrated features hold the choice and decode to the same plan; ids (canonical YAML) follow from it.
    const std::vector<float> f = plan_features(p, config, /*calibrated=*/true);
    EXPECT_EQ(plan_from_features(f, config, true), canonical_plan(p));
    for (int64_t l = 0; l < config.num_layers; ++l)
      for (Component c : kAllComponents) {
        const ComponentPlan& cp = p.at(l, c);
        const size_t block = static_cast<size_t>(l * kFeaturesPerLayer + static_cast<int>(c) * kFeaturesPerComponent);
        const size_t tail = static_cast<size_t>(config.num_layers * kFeaturesPerLayer +
                                                (l * kNumComponents + static_cast<int>(c)) * kCalibratedFeatures);
        EXPECT_EQ(f[block + kFeaturesPerComponent - 1], cp.quant == QuantMethod::Int8 ? 1.0f : 0.0f);
        EXPECT_EQ(f[tail + 4], cp.quant == QuantMethod::Gptq ? 1.0f : 0.0f);
        EXPECT_EQ(f[tail + 5], cp.quant == QuantMethod::Rtn ? 1.0f : 0.0f);
        EXPECT_EQ(f[tail + 6], has_grid(cp.quant) ? static_cast<float>(cp.quant_params.bits) : 0.0f);
        EXPECT_EQ(f[tail + 7], has_grid(cp.quant) ? static_cast<float>(cp.quant_params.group_size) : 0.0f);
        EXPECT_EQ(f[tail + 9], cp.quant_params.act_order ? 1.0f : 0.0f);
      }
  }
  // Every choice on some component; gptq group 128 never on down (688 columns), every other choice on it.
  for (int k = 0; k < 5; ++k) {
    int total = 0;
    for (Component c : kAllComponents) total += (drawn[{k, c}]);
    EXPECT_GT(total, 20) << "choice " << k;
  }
  EXPECT_EQ((drawn[{2, Component::Down}]), 0);
  for (int k : {0, 1, 3, 4}) EXPECT_GT((drawn[{k, Component::Down}]), 0) << "choice " << k;
  EXPECT_GT((drawn[{2, Component::Q}]), 0);
}

TEST(SpaceQuant, Int8FlagAndAQuantListAreExclusive) {
  SearchSpace space;
  space.int8 = true;
  space.quant = {QuantChoice{}, QuantChoice{QuantMethod::Int8, {}}};
  EXPECT_THROW(validate_space(space, tiny_config(), Budget{}), InputError);
  space.int8 = false;
  EXPECT_NO_THROW(validate_space(space, tiny_config(), Budget{}));
}

}  // namespace
}  // namespace divprune

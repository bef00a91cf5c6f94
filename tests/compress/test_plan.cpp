// Plans: YAML parsing with overrides, canonical writing, validation messages, feature vectors, sizes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "compress/plan.hpp"
#include "core/errors.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

// A small GQA model: 4 layers, hidden 64, 4 query heads / 2 KV heads of 16, 176 SwiGLU channels.
ModelConfig small_config(int64_t layers = 4) {
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_layers = layers;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.max_seq_len = 256;
  c.source = "small/config.json";
  return c;
}

// tiny-llama2-trained's architecture (the plans in configs/plans are written for it).
ModelConfig trained_config() {
  ModelConfig c = small_config(6);
  c.vocab_size = 32000;
  c.hidden_size = 256;
  c.intermediate_size = 688;
  c.num_heads = 8;
  c.num_kv_heads = 8;
  c.head_dim = 32;
  return c;
}

const char* kExample = R"(drop_layers: [1]
components:
  - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}}
  - {layers: [0, 2], names: [gate, up, down], prune: {method: channels, sparsity: 0.25}}
  - {layers: [2], names: [down], quant: int8}
)";

TEST(CompressPlan, ParsesTheExampleWithOverridesFieldByField) {
  const CompressionPlan p = parse_plan(kExample, small_config(), "example.yaml").plan();
  ASSERT_EQ(p.layers.size(), 4u);
  EXPECT_EQ(p.dropped_layers(), (std::vector<int64_t>{1}));
  const PruneSpec mag{PruneMethod::Magnitude, 0.5}, ch{PruneMethod::Channels, 0.25};
  EXPECT_EQ(p.at(3, Component::Gate).prune, mag);
  EXPECT_EQ(p.at(1, Component::Q).prune, mag);
  EXPECT_EQ(p.at(0, Component::Q).prune, mag);
  EXPECT_EQ(p.at(0, Component::Gate).prune, ch);
  EXPECT_EQ(p.at(2, Component::Up).prune, ch);
  EXPECT_EQ(p.at(2, Component::Down).prune, ch);  // the int8 entry keeps the earlier prune
  EXPECT_EQ(p.at(2, Component::Down).quant, QuantMethod::Int8);
  EXPECT_EQ(p.at(0, Component::Down).quant, QuantMethod::None);
  EXPECT_FALSE(p.is_identity());
}

TEST(CompressPlan, NoneClearsAFieldAndEmptyFileIsIdentity) {
  const CompressionPlan p = parse_plan(R"(components:
  - {layers: all, names: [q, gate], prune: {method: magnitude_row, sparsity: 0.3}, quant: int8}
  - {layers: [1], names: [q], prune: none}
  - {layers: [1], names: gate, quant: none}
)", small_config(), "none.yaml").plan();
  EXPECT_FALSE(p.at(1, Component::Q).prune.has_value());
  EXPECT_EQ(p.at(1, Component::Q).quant, QuantMethod::Int8);
  EXPECT_EQ(p.at(1, Component::Gate).prune, (PruneSpec{PruneMethod::MagnitudeRow, 0.3}));
  EXPECT_EQ(p.at(1, Component::Gate).quant, QuantMethod::None);
  EXPECT_TRUE(parse_plan("", small_config(), "empty.yaml").plan().is_identity());
  EXPECT_TRUE(parse_plan("drop_layers: []\ncomponents: []\n", small_config(), "empty.yaml").plan().is_identity());
}

TEST(CompressPlan, TwoFourSparsityMayBeOmitted) {
  const CompressionPlan p =
      parse_plan("components:\n  - {layers: all, names: [up], prune: {method: \"2:4\"}}\n", small_config(), "24.yaml").plan();
  EXPECT_EQ(p.at(0, Component::Up).prune, (PruneSpec{PruneMethod::TwoFour, 0.5}));
  // Unquoted 2:4 is read as the string "2:4" too.
  EXPECT_EQ(parse_plan("components:\n  - {layers: all, names: [up], prune: {method: 2:4, sparsity: 0.5}}\n",
                       small_config(), "24.yaml").plan(),
            p);
}

CompressionPlan random_plan(std::mt19937& rng, const ModelConfig& config) {
  CompressionPlan p = CompressionPlan::identity(config.num_layers);
  std::uniform_int_distribution<int> pick(0, 9);
  const double sparsities[] = {0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9};
  for (int64_t l = 0; l < config.num_layers; ++l) {
    p.layers[l].removed = pick(rng) == 0;
    for (Component c : kAllComponents) {
      ComponentPlan& cp = p.at(l, c);
      const int m = pick(rng);
      if (m < kNumPruneMethods) {
        const PruneMethod method = static_cast<PruneMethod>(m);
        if (!prune_method_applies(method, c)) continue;
        double s = sparsities[pick(rng) % 7];
        if (method == PruneMethod::TwoFour) s = 0.5;
        if (method == PruneMethod::Heads) s = 0.5 * (pick(rng) % 2);  // 2 KV heads: 0 or 0.5
        cp.prune = PruneSpec{method, s};
      }
      if (pick(rng) < 3) cp.quant = QuantMethod::Int8;
    }
  }
  if (p.dropped_layers().size() == p.layers.size()) p.layers[0].removed = false;
  return p;
}

TEST(CompressPlan, WriteThenReadGivesTheSamePlan) {
  const ModelConfig config = small_config();
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    const CompressionPlan p = random_plan(rng, config);
    const std::string yaml = plan_to_yaml(p);
    EXPECT_EQ(parse_plan(yaml, config, "written.yaml").plan(), p) << yaml;
  }
  const CompressionPlan example = parse_plan(kExample, config, "example.yaml").plan();
  const std::string yaml = plan_to_yaml(example);
  EXPECT_THAT(yaml, HasSubstr("drop_layers: [1]"));
  EXPECT_THAT(yaml, HasSubstr("{layers: [1, 3], names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}}"));
  EXPECT_EQ(parse_plan(yaml, config, "example.yaml").plan(), example);
}

TEST(CompressPlan, SaveAndLoad) {
  const auto dir = std::filesystem::temp_directory_path() / ("divprune-plan-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const ModelConfig config = small_config();
  const CompressionPlan p = parse_plan(kExample, config, "example.yaml").plan();
  save_plan(p, dir / "p.yaml");
  EXPECT_EQ(load_plan(dir / "p.yaml", config).plan(), p);
  try {
    load_plan(dir / "missing.yaml", config);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.yaml: cannot open the plan file"));
  }
  std::filesystem::remove_all(dir);
}

struct BadPlan {
  const char* yaml;
  const char* message;
};

TEST(CompressPlan, RejectsBadPlansWithMessagesNamingFileAndKey) {
  const BadPlan cases[] = {
      {"components:\n  - {layers: all, names: [q], prune: {method: magnitude, sparsity: 1.0}}\n",
       "bad.yaml: components[0].prune.sparsity (line 2): sparsity 1 is outside [0, 1)"},
      {"components:\n  - {layers: all, names: [q], prune: {method: magnitude, sparsity: -0.1}}\n",
       "components[0].prune.sparsity (line 2): sparsity -0.1 is outside [0, 1)"},
      {"components:\n  - {layers: all, names: [q], prune: {method: magnitude, sparsity: lots}}\n",
       "components[0].prune.sparsity (line 2): expected a number, found \"lots\""},
      {"components:\n  - {layers: all, names: [q, qq], prune: {method: magnitude, sparsity: 0.5}}\n",
       "components[0].names[1] (line 2): unknown component \"qq\" (known: q, k, v, o, gate, up, down)"},
      {"components:\n  - {layers: all, names: [q], prune: {method: random, sparsity: 0.5}}\n",
       "components[0].prune.method (line 2): unknown prune method \"random\" (known: magnitude, "
       "magnitude_row, 2:4, heads, channels)"},
      {"components:\n  - {layers: [0, 4], names: [q], quant: int8}\n",
       "components[0].layers[1] (line 2): layer 4 is out of range (the model has 4 layers, 0..3)"},
      {"drop_layers: [0, 1, 2, 3]\n", "drop_layers (line 1): drop_layers removes all 4 layers of the model"},
      {"drop_layers: [-1]\n", "drop_layers[0] (line 1): layer -1 is out of range"},
      {"components:\n  - {layers: all, names: [gate], prune: {method: heads, sparsity: 0.5}}\n",
       "components[0].prune.method (line 2): method heads applies to q, k, v, o only, not to gate"},
      {"components:\n  - {layers: all, names: [v], prune: {method: channels, sparsity: 0.5}}\n",
       "components[0].prune.method (line 2): method channels applies to gate, up, down only, not to v"},
      {"components:\n  - {layers: all, names: [q], prune: {method: heads, sparsity: 0.25}}\n",
       "heads sparsity 0.25 prunes 0.5 of the model's 2 KV heads; it must prune whole KV heads (sparsity k/2: 0.5)"},
      {"components:\n  - {layers: all, names: [up], prune: {method: \"2:4\", sparsity: 0.3}}\n",
       "2:4 always prunes half of the entries; its sparsity must be 0.5 or omitted, found 0.3"},
      {"components:\n  - {layers: all, names: [up], prune: {method: magnitude}}\n",
       "components[0].prune (line 2): missing key \"sparsity\""},
      {"components:\n  - {layers: all, names: [up], quant: int4}\n",
       "components[0].quant (line 2): unknown quantization \"int4\" (known: none, int8)"},
      {"components:\n  - {layers: all, names: [up]}\n", "components[0] (line 2): the entry sets neither prune nor quant"},
      {"components:\n  - {names: [up], quant: int8}\n", "components[0] (line 2): missing key \"layers\""},
      {"components:\n  - {layers: all, names: [up], quant: int8, sparsity: 0.5}\n",
       "components[0].sparsity (line 2): unknown key \"sparsity\" (known: layers, names, prune, quant)"},
      {"drop_layer: [1]\n", "drop_layer (line 1): unknown key \"drop_layer\" (known: drop_layers, components)"},
      {"components: [\n", "bad.yaml: not valid YAML"},
      {"- 1\n- 2\n", "bad.yaml: a plan is a map with keys drop_layers and components"},
  };
  for (const BadPlan& c : cases) {
    try {
      parse_plan(c.yaml, small_config(), "bad.yaml");
      ADD_FAILURE() << "accepted:\n" << c.yaml;
    } catch (const InputError& e) {
      EXPECT_THAT(e.what(), HasSubstr(c.message)) << c.yaml;
      EXPECT_THAT(e.what(), HasSubstr("bad.yaml")) << c.yaml;
    }
  }
}

TEST(CompressPlan, TwoFourNeedsInputDimensionsAndShardsDivisibleByFour) {
  ModelConfig odd = small_config();
  odd.intermediate_size = 174;  // down has 174 input columns
  EXPECT_NO_THROW(parse_plan("components:\n  - {layers: all, names: [up], prune: {method: \"2:4\"}}\n", odd, "a.yaml"));
  try {
    parse_plan("components:\n  - {layers: all, names: [down], prune: {method: \"2:4\"}}\n", odd, "a.yaml");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("2:4 needs the input dimension of down (174) to be a multiple of 4"));
  }
  // 168 channels split over tp 4 leave 42 columns of down per shard: groups would straddle shards.
  ModelConfig split = small_config();
  split.intermediate_size = 168;
  split.num_kv_heads = 4;
  const std::string yaml = "components:\n  - {layers: [2], names: [down], prune: {method: \"2:4\"}}\n";
  EXPECT_EQ(parse_plan(yaml, split, "b.yaml").tp(), 1);
  EXPECT_EQ(parse_plan(yaml, split, "b.yaml", 2).tp(), 2);  // 84 columns per shard
  for (int tp : {1, 2}) EXPECT_NO_THROW(parse_plan(yaml, split, "b.yaml", tp));
  const CompressionPlan p = parse_plan(yaml, split, "b.yaml").plan();
  // The same check whether the plan comes from a file or from code.
  for (const auto& validate : std::vector<std::function<void()>>{[&] { parse_plan(yaml, split, "b.yaml", 4); },
                                                                  [&] { validate_plan(p, split, "b.yaml", 4); }}) {
    try {
      validate();
      ADD_FAILURE() << "accepted";
    } catch (const InputError& e) {
      EXPECT_THAT(e.what(), HasSubstr("b.yaml: layer 2 down: 2:4 groups of 4 input columns would straddle"));
      EXPECT_THAT(e.what(), HasSubstr("tp 4 leaves 42 columns per shard"));
    }
  }
  // A removed layer is never applied: its 2:4 entries do not matter.
  CompressionPlan removed = p;
  removed.layers[2].removed = true;
  EXPECT_NO_THROW(validate_plan(removed, split, "code", 4));
}

TEST(CompressPlan, ValidatePlanChecksPlansBuiltInCode) {
  const ModelConfig config = small_config();
  CompressionPlan p = CompressionPlan::identity(3);
  EXPECT_THROW(validate_plan(p, config, "code"), InputError);  // 3 layers for a 4-layer model
  p = CompressionPlan::identity(4);
  p.at(1, Component::K).prune = PruneSpec{PruneMethod::Channels, 0.5};
  try {
    validate_plan(p, config, "code");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("code: layer 1 k: method channels applies to gate, up, down only, not to k"));
  }
}

TEST(CompressPlan, FeatureLayoutAsDocumented) {
  const ModelConfig config = small_config();
  const CompressionPlan p = parse_plan(kExample, config, "example.yaml").plan();
  const std::vector<float> f = plan_features(p, config);
  const std::vector<std::string> names = plan_feature_names(config);
  ASSERT_EQ(f.size(), 4u * 50u);
  ASSERT_EQ(names.size(), f.size());
  auto at = [&](int64_t l, Component c, int field) { return f[l * 50 + static_cast<int>(c) * 7 + field]; };
  EXPECT_EQ(names[50 * 2 + 6 * 7 + 0], "layer2.down.sparsity");
  EXPECT_EQ(names[50 * 2 + 6 * 7 + 5], "layer2.down.channels");
  EXPECT_EQ(names[50 * 2 + 6 * 7 + 6], "layer2.down.int8");
  EXPECT_EQ(names[50 * 1 + 49], "layer1.removed");
  EXPECT_EQ(names[3 * 7 + 3], "layer0.o.2:4");
  EXPECT_FLOAT_EQ(at(2, Component::Down, 0), 0.25f);
  EXPECT_EQ(at(2, Component::Down, 5), 1.0f);
  EXPECT_EQ(at(2, Component::Down, 1), 0.0f);
  EXPECT_EQ(at(2, Component::Down, 6), 1.0f);
  EXPECT_FLOAT_EQ(at(3, Component::Q, 0), 0.5f);
  EXPECT_EQ(at(3, Component::Q, 1), 1.0f);
  EXPECT_EQ(f[50 * 1 + 49], 1.0f);
  for (int j = 0; j < 49; ++j) EXPECT_EQ(f[50 * 1 + j], 0.0f) << "a removed layer's components are 0";
  EXPECT_EQ(f[50 * 0 + 49], 0.0f);
}

TEST(CompressPlan, FeaturesDecodeToTheCanonicalPlan) {
  const ModelConfig config = small_config();
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    const CompressionPlan p = random_plan(rng, config);
    EXPECT_EQ(plan_from_features(plan_features(p, config), config), canonical_plan(p));
    EXPECT_EQ(plan_features(canonical_plan(p), config), plan_features(p, config));
  }
  EXPECT_THROW(plan_from_features(std::vector<float>(3), config), InputError);
}

TEST(CompressPlan, SizesCountExactlyWhatTheOperatorsZero) {
  const ModelConfig config = small_config();  // C 64, F 176, q 64, kv 32
  const int64_t per_layer = config.layer_linear_parameters();
  EXPECT_EQ(per_layer, 64 * 64 * 2 + 2 * 64 * 32 + 3 * 64 * 176);
  EXPECT_EQ(pruned_entries({PruneMethod::Magnitude, 0.5}, Component::Q, config), 64 * 64 / 2);
  EXPECT_EQ(pruned_entries({PruneMethod::Magnitude, 0.1}, Component::K, config), 205);  // round(204.8)
  EXPECT_EQ(pruned_entries({PruneMethod::MagnitudeRow, 0.1}, Component::Down, config), 64 * 18);  // round(17.6)
  EXPECT_EQ(pruned_entries({PruneMethod::TwoFour, 0.5}, Component::Gate, config), 176 * 64 / 2);
  EXPECT_EQ(pruned_entries({PruneMethod::Heads, 0.5}, Component::Q, config), 32 * 64);  // 1 KV head = 2 query heads
  EXPECT_EQ(pruned_entries({PruneMethod::Heads, 0.5}, Component::K, config), 16 * 64);
  EXPECT_EQ(pruned_entries({PruneMethod::Heads, 0.5}, Component::O, config), 64 * 32);
  EXPECT_EQ(pruned_entries({PruneMethod::Channels, 0.25}, Component::Down, config), 44 * 64);
  // Half-to-even: 0.5 · 5 = 2.5 -> 2.
  ModelConfig five = config;
  five.intermediate_size = 5;
  EXPECT_EQ(pruned_channels(0.5, five), 2);

  const PlanSize base = plan_size(CompressionPlan::identity(4), config);
  EXPECT_EQ(base.linear_parameters, 4 * per_layer);
  EXPECT_EQ(base.linear_kept, base.linear_parameters);
  EXPECT_EQ(base.parameters, config.parameter_count());
  EXPECT_EQ(base.sparsity, 0.0);

  const CompressionPlan p = parse_plan(kExample, config, "example.yaml").plan();
  const PlanSize s = plan_size(p, config);
  // layers 0, 2: magnitude 0.5 on attention, channels 0.25 on the MLP; layer 1 removed; layer 3 magnitude 0.5.
  const int64_t attn = 64 * 64 * 2 + 2 * 64 * 32, mlp = 3 * 64 * 176;
  const int64_t kept = 2 * (attn / 2 + (mlp - 3 * 44 * 64)) + (attn / 2 + mlp / 2);
  EXPECT_EQ(s.linear_kept, kept);
  EXPECT_EQ(s.linear_int8, 64 * 176 - 44 * 64);
  EXPECT_EQ(s.parameters, config.parameter_count() - (4 * per_layer - kept) - 2 * 64);
  EXPECT_DOUBLE_EQ(s.sparsity, 1.0 - static_cast<double>(kept) / (4.0 * per_layer));
  EXPECT_EQ(s.linear_bytes, 2 * kept - s.linear_int8);
}

TEST(CompressPlan, ShippedPlansParse) {
  const ModelConfig config = trained_config();
  const std::filesystem::path dir = DIVPRUNE_PLANS_DIR;
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    EXPECT_NO_THROW(load_plan(entry.path(), config)) << entry.path();
  }
  EXPECT_GE(count, 5);
  const CompressionPlan mixed = load_plan(dir / "example_mixed.yaml", config).plan();
  EXPECT_EQ(mixed.dropped_layers(), (std::vector<int64_t>{1}));
  EXPECT_EQ(mixed.at(3, Component::K).prune, (PruneSpec{PruneMethod::Heads, 0.25}));
  EXPECT_EQ(mixed.at(5, Component::Down).prune, (PruneSpec{PruneMethod::TwoFour, 0.5}));
  EXPECT_EQ(mixed.at(5, Component::Down).quant, QuantMethod::Int8);
  EXPECT_EQ(load_plan(dir / "drop_layer4.yaml", config).plan().dropped_layers(), (std::vector<int64_t>{4}));
}

}  // namespace
}  // namespace divprune

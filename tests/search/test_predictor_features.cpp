// The predictor's input row (search/predictor_features.hpp): the plan vector unchanged, then aggregates whose
// values are worked out by hand for a small plan of a Llama-2-7B-shaped model.
#include <gtest/gtest.h>

#include "compress/plan.hpp"
#include "search/predictor_features.hpp"
#include "tests/support/model_shapes.hpp"

namespace divprune {
namespace {

// Four layers keep the vector short; the matrix shapes are Llama-2-7B's.
ModelConfig llama7b() { return test::llama_shape(4, 4096, 11008, 32, 32); }

TEST(PredictorFeatures, AggregatesFollowTheirDefinitions) {
  const ModelConfig m = llama7b();
  CompressionPlan plan = CompressionPlan::identity(m.num_layers);
  plan.at(0, Component::Q).prune = PruneSpec{PruneMethod::Magnitude, 0.5};
  plan.at(0, Component::Down).prune = PruneSpec{PruneMethod::MagnitudeRow, 0.25};
  plan.at(1, Component::Up).quant = QuantMethod::Int8;
  plan.layers[2].removed = true;
  const std::vector<float> features = plan_features(plan, m);
  const std::vector<float> row = predictor_row(features, m);
  const std::vector<std::string> names = predictor_feature_names(m);
  ASSERT_EQ(row.size(), names.size());
  ASSERT_EQ(row.size(), features.size() + 4 + 7 + 2);
  for (size_t i = 0; i < features.size(); ++i) EXPECT_EQ(row[i], features[i]) << names[i];

  const size_t base = features.size();
  const double attn = 4096.0 * 4096.0, mlp = 4096.0 * 11008.0, layer = 4 * attn + 3 * mlp;
  EXPECT_EQ(names[base], "layer0.linear_sparsity");
  EXPECT_NEAR(row[base + 0], (0.5 * attn + 0.25 * mlp) / layer, 1e-6);
  EXPECT_EQ(row[base + 1], 0.0f);  // int8 removes no parameter
  EXPECT_EQ(row[base + 2], 1.0f);  // removed layer
  EXPECT_EQ(row[base + 3], 0.0f);
  EXPECT_EQ(names[base + 4], "q.mean_sparsity");
  EXPECT_NEAR(row[base + 4], (0.5 + 1.0) / 4, 1e-7);
  EXPECT_NEAR(row[base + 5], 1.0 / 4, 1e-7);           // k: only the removed layer
  EXPECT_NEAR(row[base + 10], (0.25 + 1.0) / 4, 1e-7);  // down
  EXPECT_EQ(names[base + 11], "int8_share");
  EXPECT_NEAR(row[base + 11], 1.0 / 21, 1e-7);  // 1 of the 3 kept layers x 7 components
  EXPECT_EQ(names[base + 12], "removed_layers");
  EXPECT_EQ(row[base + 12], 1.0f);

  // Without aggregates the row is the plan vector.
  EXPECT_EQ(predictor_row(features, m, false), features);
  EXPECT_EQ(predictor_feature_names(m, false), plan_feature_names(m));
}

}  // namespace
}  // namespace divprune

// Storage bytes of a plan (compress/storage.hpp) on a small Llama shape, by hand: dense fp16, int8 with row
// scales, bitmap-sparse values, the cheaper-of rule, removed layers.
#include <gtest/gtest.h>

#include "compress/storage.hpp"
#include "tests/support/model_shapes.hpp"

namespace divprune {
namespace {

TEST(Storage, BytesOfTheDocumentedFormat) {
  // 2 layers, hidden 64, intermediate 128, 4 heads (head_dim 16), 2 KV heads: q 64x64, k/v 32x64, o 64x64,
  // gate/up 128x64, down 64x128. Linear entries per layer: 4096 + 2·2048 + 4096 + 3·8192 = 36864.
  const ModelConfig model = test::llama_shape(2, 64, 128, 4, 2);
  ASSERT_EQ(model.layer_linear_parameters(), 36864);
  CompressionPlan plan = CompressionPlan::identity(2);
  StorageBytes s = plan_storage_bytes(plan, model);
  EXPECT_EQ(s.dense_fp16, 2 * 2 * 36864);
  EXPECT_EQ(s.stored, s.dense_fp16);
  EXPECT_EQ(s.fraction(), 1.0);

  // int8 q of layer 0: 4096 values at 1 byte + 64 fp16 row scales.
  plan.at(0, Component::Q).quant = QuantMethod::Int8;
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 4096 + 128);
  // 50% magnitude on gate of layer 0 (8192 entries, 4096 kept): bitmap 1024 bytes + 4096 · 2.
  plan.at(0, Component::Gate).prune = PruneSpec{PruneMethod::Magnitude, 0.5};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Gate, model), 1024 + 8192);
  // ... and in int8 too: 1024 + 4096 + 128 · 2 scales.
  plan.at(0, Component::Gate).quant = QuantMethod::Int8;
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Gate, model), 1024 + 4096 + 256);
  // 5% of up (410 of 8192 pruned): the bitmap (1024) costs more than the 820 bytes saved, so it stays dense.
  plan.at(0, Component::Up).prune = PruneSpec{PruneMethod::Magnitude, 0.05};
  ASSERT_EQ(pruned_entries(*plan.at(0, Component::Up).prune, Component::Up, model), 410);
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Up, model), 2 * 8192);
  // A removed layer stores nothing.
  plan.layers[1].removed = true;
  EXPECT_EQ(component_storage_bytes(plan, 1, Component::Down, model), 0);
  s = plan_storage_bytes(plan, model);
  // Layer 0: 36864 · 2 − (8192 − 4224) for q − (16384 − 5376) for gate; layer 1: nothing.
  EXPECT_EQ(s.stored, 2 * 36864 - (8192 - 4224) - (16384 - 5376));
  EXPECT_DOUBLE_EQ(s.fraction(), static_cast<double>(s.stored) / (4.0 * 36864));
}

TEST(Storage, GridQuantizersStoreBitsGroupScalesZerosAndColumnOrder) {
  const ModelConfig model = test::llama_shape(2, 64, 128, 4, 2);
  CompressionPlan plan = CompressionPlan::identity(2);
  ComponentPlan& q = plan.at(0, Component::Q);  // 64 x 64
  // rtn 4 bits, groups of 16 columns, symmetric: 64 rows · 32 bytes of packed values + 64 · 4 fp16 scales.
  q.quant = QuantMethod::Rtn;
  q.quant_params = QuantParams{4, 16, true, false};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 64 * 32 + 2 * 64 * 4);
  // Asymmetric: + 4 zero points of 4 bits per row (2 bytes).
  q.quant_params.sym = false;
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 64 * 32 + 2 * 64 * 4 + 64 * 2);
  // gptq with act_order: + one int32 group index per column.
  q.quant = QuantMethod::Gptq;
  q.quant_params = QuantParams{4, 16, true, true};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 64 * 32 + 2 * 64 * 4 + 4 * 64);
  // ... but not with one group per row (the order does not change which scale a column uses).
  q.quant_params = QuantParams{4, -1, false, true};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 64 * 32 + 2 * 64 + 64 * 1);
  // 3 bits: a row of 64 values packs into 24 bytes.
  q.quant_params = QuantParams{3, 16, true, false};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Q, model), 64 * 24 + 2 * 64 * 4);
  // Pruned 50% and rtn-4 (gate, 128 x 64): bitmap 1024 + 4096 kept values at 4 bits + 128 · 4 scales, cheaper
  // than dense 128 · 32 + 1024.
  ComponentPlan& gate = plan.at(0, Component::Gate);
  gate.prune = PruneSpec{PruneMethod::Magnitude, 0.5};
  gate.quant = QuantMethod::Rtn;
  gate.quant_params = QuantParams{4, 16, true, false};
  EXPECT_EQ(component_storage_bytes(plan, 0, Component::Gate, model), 1024 + 2048 + 1024);
}

}  // namespace
}  // namespace divprune

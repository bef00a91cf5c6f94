#pragma once
// The embedded default model: a small Llama checkpoint that divprune writes itself (config.json +
// model.safetensors in float16), deterministic from a seed, so the demo and the search run with no download.
// Weights are scaled so that the model's next-token distributions are peaked (logit std ≈ 3), which makes
// compression change its outputs measurably, like a trained model's.
#include <cstdint>
#include <filesystem>

#include "model/config.hpp"

namespace divprune {

struct SyntheticSpec {
  uint64_t seed = 1234;
  int64_t vocab_size = 512;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 176;
  int64_t num_layers = 4;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;  // GQA, so the demo exercises grouped attention
  int64_t max_seq_len = 256;
};

// Writes dir/config.json and dir/model.safetensors (creating dir). Returns the config written.
ModelConfig write_synthetic_checkpoint(const std::filesystem::path& dir, const SyntheticSpec& spec);

}  // namespace divprune

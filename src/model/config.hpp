#pragma once
// The architecture of a Llama model, read from a Hugging Face config.json or a llama2.c header.
// Nothing else in divprune hard-codes a model size.
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/dtype.hpp"

namespace divprune {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;         // C
  int64_t intermediate_size = 0;   // F (SwiGLU channels)
  int64_t num_layers = 0;          // L
  int64_t num_heads = 0;           // query heads
  int64_t num_kv_heads = 0;        // == num_heads for MHA, fewer for GQA
  int64_t head_dim = 0;            // D
  int64_t max_seq_len = 0;         // max_position_embeddings
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-5f;
  bool tie_word_embeddings = false;
  DType dtype = DType::F32;        // storage dtype of the checkpoint
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  std::string source;              // file the config came from, for messages

  // Parameters of the full model (embedding, every layer, final norm, lm_head unless tied).
  int64_t parameter_count() const;
  // Parameters of the seven linear projections of one layer.
  int64_t layer_linear_parameters() const;
};

// Parses config.json in the classic layout (top-level rope_theta, torch_dtype) or the newer one
// (rope_parameters.rope_theta, dtype). Throws InputError naming the file and key on anything malformed.
ModelConfig parse_hf_config(const std::filesystem::path& path);
// Same, from text already read (`source` names it in messages).
ModelConfig parse_hf_config_text(const std::string& text, const std::string& source);

// Throws InputError if sizes are non-positive or inconsistent (heads vs kv heads, head_dim parity).
void validate_config(const ModelConfig& config);

}  // namespace divprune

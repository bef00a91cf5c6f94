#pragma once
// Model configurations of a given shape for tests that need sizes, not weights (plan sizes, feature vectors,
// search spaces of Llama-2-7B/13B/70B-shaped models).
#include <cstdint>

#include "model/config.hpp"

namespace divprune::test {

inline ModelConfig llama_shape(int64_t layers, int64_t hidden, int64_t intermediate, int64_t heads, int64_t kv_heads,
                               int64_t vocab = 32000) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_seq_len = 4096;
  return c;
}

}  // namespace divprune::test

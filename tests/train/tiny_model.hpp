#pragma once
// A tiny random Llama (2 layers, hidden 16, 2 query heads on 1 KV head: GQA, vocab 32) as a tp = 1 working
// copy, for the training tests.
#include <random>
#include <vector>

#include "model/config.hpp"
#include "model/shard.hpp"
#include "model/weights.hpp"

namespace divprune::test {

inline ModelConfig tiny_config(bool tied = false) {
  ModelConfig c;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.head_dim = 8;
  c.max_seq_len = 32;
  c.rope_theta = 10000.0f;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = tied;
  c.source = "tiny test model";
  return c;
}

inline HostMatrix random_matrix(int64_t rows, int64_t cols, float scale, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, scale);
  HostMatrix m{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
  for (float& x : m.data) x = normal(rng);
  return m;
}

inline HostWeights tiny_weights(const ModelConfig& c, unsigned seed = 7) {
  std::mt19937 rng(seed);
  HostWeights w;
  w.layout = make_shard_layout(c, TpShard{0, 1});
  const int64_t C = c.hidden_size, F = c.intermediate_size, D = c.head_dim;
  w.embed = random_matrix(c.vocab_size, C, 1.0f, rng);
  std::uniform_real_distribution<float> gain(0.8f, 1.2f);
  auto norm = [&] {
    std::vector<float> g(static_cast<size_t>(C));
    for (float& x : g) x = gain(rng);
    return g;
  };
  for (int64_t l = 0; l < c.num_layers; ++l) {
    HostLayer layer;
    layer.attn_norm = norm();
    layer.ffn_norm = norm();
    const float s = 0.4f;
    layer.linear.q = random_matrix(c.num_heads * D, C, s, rng);
    layer.linear.k = random_matrix(c.num_kv_heads * D, C, s, rng);
    layer.linear.v = random_matrix(c.num_kv_heads * D, C, s, rng);
    layer.linear.o = random_matrix(C, c.num_heads * D, s, rng);
    layer.linear.gate = random_matrix(F, C, s, rng);
    layer.linear.up = random_matrix(F, C, s, rng);
    layer.linear.down = random_matrix(C, F, s, rng);
    w.layers.push_back(std::move(layer));
  }
  w.final_norm = norm();
  w.lm_head = c.tie_word_embeddings ? w.embed : random_matrix(c.vocab_size, C, 0.5f, rng);
  return w;
}

inline std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int32_t& id : ids) id = static_cast<int32_t>(rng() % static_cast<unsigned>(vocab));
  return ids;
}

}  // namespace divprune::test

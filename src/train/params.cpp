#include "train/params.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace divprune::train {

std::array<int64_t, 2> ParamLayout::linear_shape(Component c) const {
  const int64_t C = config.hidden_size, F = config.intermediate_size, D = config.head_dim;
  switch (c) {
    case Component::Q: return {config.num_heads * D, C};
    case Component::K:
    case Component::V: return {config.num_kv_heads * D, C};
    case Component::O: return {C, config.num_heads * D};
    case Component::Gate:
    case Component::Up: return {F, C};
    case Component::Down: return {C, F};
  }
  return {0, 0};
}

ParamLayout make_param_layout(const ModelConfig& config, const std::vector<bool>& removed) {
  EXPECTS(removed.empty() || static_cast<int64_t>(removed.size()) == config.num_layers, "removed-layer flags");
  ParamLayout p;
  p.config = config;
  const int64_t C = config.hidden_size, V = config.vocab_size;
  int64_t at = 0;
  p.embed = at;
  at += V * C;
  p.layers.resize(static_cast<size_t>(config.num_layers));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    LayerOffsets& lo = p.layers[static_cast<size_t>(l)];
    lo.removed = !removed.empty() && removed[static_cast<size_t>(l)];
    lo.linear.fill(-1);
    if (lo.removed) continue;
    lo.attn_norm = at;
    at += C;
    lo.ffn_norm = at;
    at += C;
    for (Component c : kAllComponents) {
      const auto [rows, cols] = p.linear_shape(c);
      lo.linear[static_cast<size_t>(c)] = at;
      at += rows * cols;
    }
  }
  p.final_norm = at;
  at += C;
  if (config.tie_word_embeddings) {
    p.lm_head = p.embed;
  } else {
    p.lm_head = at;
    at += V * C;
  }
  p.total = at;
  return p;
}

namespace {
void expect_tp1(const ParamLayout& layout, const HostWeights& w) {
  const int64_t C = layout.config.hidden_size;
  EXPECTS(w.layout.shard.size == 1 && w.embed.rows == layout.config.vocab_size && w.embed.cols == C &&
              static_cast<int64_t>(w.layers.size()) == layout.config.num_layers,
          "training parameters: the weights are not a whole (tp = 1) model of this config");
}
}  // namespace

std::vector<float> pack_params(const ParamLayout& layout, const HostWeights& w) {
  expect_tp1(layout, w);
  std::vector<float> flat(static_cast<size_t>(layout.total));
  auto put = [&](int64_t offset, const std::vector<float>& values) {
    std::copy(values.begin(), values.end(), flat.begin() + offset);
  };
  put(layout.embed, w.embed.data);
  for (size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerOffsets& lo = layout.layers[l];
    if (lo.removed) continue;
    put(lo.attn_norm, w.layers[l].attn_norm);
    put(lo.ffn_norm, w.layers[l].ffn_norm);
    for (Component c : kAllComponents) {
      const auto [rows, cols] = layout.linear_shape(c);
      const HostMatrix& m = w.layers[l].linear[c];
      EXPECTS(m.rows == rows && m.cols == cols, "training parameters: projection shape");
      put(lo.linear[static_cast<size_t>(c)], m.data);
    }
  }
  put(layout.final_norm, w.final_norm);
  if (!layout.config.tie_word_embeddings) put(layout.lm_head, w.lm_head.data);
  return flat;
}

void unpack_params(const ParamLayout& layout, std::span<const float> flat, HostWeights& w) {
  expect_tp1(layout, w);
  EXPECTS(static_cast<int64_t>(flat.size()) == layout.total, "training parameters: flat size");
  auto get = [&](int64_t offset, std::vector<float>& values) {
    std::copy_n(flat.begin() + offset, values.size(), values.begin());
  };
  get(layout.embed, w.embed.data);
  for (size_t l = 0; l < layout.layers.size(); ++l) {
    const LayerOffsets& lo = layout.layers[l];
    if (lo.removed) continue;
    get(lo.attn_norm, w.layers[l].attn_norm);
    get(lo.ffn_norm, w.layers[l].ffn_norm);
    for (Component c : kAllComponents) get(lo.linear[static_cast<size_t>(c)], w.layers[l].linear[c].data);
  }
  get(layout.final_norm, w.final_norm);
  get(layout.lm_head, w.lm_head.data);  // tied: lm_head is again a copy of the embedding
}

std::vector<uint8_t> make_gradient_mask(const ParamLayout& layout, std::span<const float> flat) {
  std::vector<uint8_t> mask(static_cast<size_t>(layout.total), 1);
  for (const LayerOffsets& lo : layout.layers) {
    if (lo.removed) continue;
    for (Component c : kAllComponents) {
      const auto [rows, cols] = layout.linear_shape(c);
      const int64_t begin = lo.linear[static_cast<size_t>(c)];
      for (int64_t i = begin; i < begin + rows * cols; ++i) mask[i] = flat[i] != 0.0f;
    }
  }
  return mask;
}

std::vector<uint8_t> make_decay_mask(const ParamLayout& layout) {
  std::vector<uint8_t> mask(static_cast<size_t>(layout.total), 1);
  const int64_t C = layout.config.hidden_size;
  auto clear = [&](int64_t offset) { std::fill_n(mask.begin() + offset, C, 0); };
  for (const LayerOffsets& lo : layout.layers) {
    if (lo.removed) continue;
    clear(lo.attn_norm);
    clear(lo.ffn_norm);
  }
  clear(layout.final_norm);
  return mask;
}

}  // namespace divprune::train

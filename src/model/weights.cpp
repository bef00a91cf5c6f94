#include "model/weights.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/errors.hpp"
#include "kernels/backend.hpp"
#include "model/config.hpp"

namespace divprune {

std::string component_tensor_name(int64_t layer, Component component) {
  static constexpr std::array<std::string_view, kNumComponents> suffix = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  return fmt::format("model.layers.{}.{}.weight", layer, suffix[static_cast<int>(component)]);
}

namespace {

void check_shape(const Checkpoint& ckpt, const std::string& name, const Shape& expected) {
  TensorMeta meta = ckpt.meta(name);
  if (meta.shape != expected)
    throw InputError(fmt::format("{}: tensor \"{}\" has shape {}, the config ({}) needs {}", meta.file, name,
                                 shape_string(meta.shape), ckpt.config().source, shape_string(expected)));
}

// One NaN or Inf weight turns every output into NaN (perplexity "nan", exit 0): refuse it on load, naming the
// tensor and the first bad element (its index in the full tensor). One pass over values just converted: cheap
// next to the conversion itself.
void check_finite(const Checkpoint& ckpt, const std::string& name, const std::vector<float>& values, Range rows,
                  Range cols, bool is_vector) {
  const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
  if (bad == values.end()) return;
  const int64_t i = bad - values.begin();
  const int64_t row = rows.begin + i / cols.size(), col = cols.begin + i % cols.size();
  const std::string index = is_vector ? fmt::format("[{}]", col) : fmt::format("[{}, {}]", row, col);
  throw InputError(fmt::format("{}: tensor \"{}\" holds a non-finite value ({}) at index {}", ckpt.meta(name).file,
                               name, *bad, index));
}

HostMatrix read_matrix(const Checkpoint& ckpt, const std::string& name, const Shape& full, Range rows, Range cols) {
  check_shape(ckpt, name, full);
  HostMatrix m;
  m.rows = rows.size();
  m.cols = cols.size();
  m.data.resize(static_cast<size_t>(m.rows * m.cols));
  ckpt.read(name, rows, cols, m.data);
  check_finite(ckpt, name, m.data, rows, cols, false);
  return m;
}

std::vector<float> read_vector(const Checkpoint& ckpt, const std::string& name, int64_t size) {
  check_shape(ckpt, name, {size});
  std::vector<float> v(static_cast<size_t>(size));
  ckpt.read(name, {0, 1}, {0, size}, v);
  check_finite(ckpt, name, v, {0, 1}, {0, size}, true);
  return v;
}

}  // namespace

HostWeights load_host_weights(const Checkpoint& ckpt, const ShardLayout& layout) {
  const ModelConfig& c = ckpt.config();
  const int64_t C = c.hidden_size, F = c.intermediate_size, q = c.num_heads * c.head_dim,
                kv = c.num_kv_heads * c.head_dim;
  const Range all_c{0, C};
  HostWeights w;
  w.layout = layout;
  w.embed = read_matrix(ckpt, "model.embed_tokens.weight", {c.vocab_size, C}, layout.vocab, all_c);
  const std::string head_name =
      c.tie_word_embeddings && !ckpt.contains("lm_head.weight") ? "model.embed_tokens.weight" : "lm_head.weight";
  w.lm_head = head_name == "model.embed_tokens.weight" ? w.embed
                                                        : read_matrix(ckpt, head_name, {c.vocab_size, C}, layout.vocab, all_c);
  w.final_norm = read_vector(ckpt, "model.norm.weight", C);
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    HostLayer& layer = w.layers[static_cast<size_t>(l)];
    const std::string prefix = fmt::format("model.layers.{}.", l);
    layer.attn_norm = read_vector(ckpt, prefix + "input_layernorm.weight", C);
    layer.ffn_norm = read_vector(ckpt, prefix + "post_attention_layernorm.weight", C);
    const auto read = [&](Component component, const Shape& shape, Range rows, Range cols) {
      layer.linear[component] = read_matrix(ckpt, component_tensor_name(l, component), shape, rows, cols);
    };
    read(Component::Q, {q, C}, layout.q_rows, all_c);
    read(Component::K, {kv, C}, layout.kv_rows, all_c);
    read(Component::V, {kv, C}, layout.kv_rows, all_c);
    read(Component::O, {C, q}, all_c, layout.q_rows);
    read(Component::Gate, {F, C}, layout.ffn_rows, all_c);
    read(Component::Up, {F, C}, layout.ffn_rows, all_c);
    read(Component::Down, {C, F}, all_c, layout.ffn_rows);
  }
  return w;
}

void upload_linear(Backend& backend, const HostMatrix& values, Tensor& target) {
  target = backend.upload(values.data, {values.rows, values.cols}, backend.compute_dtype());
}

DeviceWeights upload_weights(Backend& backend, const HostWeights& host) {
  const DType dt = backend.compute_dtype();
  auto matrix = [&](const HostMatrix& m) { return backend.upload(m.data, {m.rows, m.cols}, dt); };
  auto vector = [&](const std::vector<float>& v) {
    return backend.upload(v, {static_cast<int64_t>(v.size())}, dt);
  };
  DeviceWeights d;
  d.embed = matrix(host.embed);
  d.lm_head = matrix(host.lm_head);
  d.final_norm = vector(host.final_norm);
  d.layers.resize(host.layers.size());
  for (size_t l = 0; l < host.layers.size(); ++l) {
    d.layers[l].attn_norm = vector(host.layers[l].attn_norm);
    d.layers[l].ffn_norm = vector(host.layers[l].ffn_norm);
    for (Component c : kAllComponents) d.layers[l].linear[c] = matrix(host.layers[l].linear[c]);
  }
  return d;
}

}  // namespace divprune

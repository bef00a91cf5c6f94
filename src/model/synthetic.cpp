#include "model/synthetic.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/errors.hpp"
#include "model/weights.hpp"

namespace divprune {

namespace {

struct NamedTensor {
  std::string name;
  Shape shape;
  std::vector<uint16_t> half;  // float16 bits
};

// Uniform values with the given standard deviation, from a generator whose sequence is fixed by the standard.
NamedTensor random_tensor(std::mt19937_64& rng, std::string name, Shape shape, double stddev, double mean = 0.0) {
  NamedTensor t{std::move(name), std::move(shape), {}};
  const double half_width = stddev * std::sqrt(3.0);
  t.half.resize(static_cast<size_t>(shape_numel(t.shape)));
  for (uint16_t& v : t.half) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
    v = float_to_half(static_cast<float>(mean + (2.0 * u - 1.0) * half_width));
  }
  return t;
}

}  // namespace

ModelConfig write_synthetic_checkpoint(const std::filesystem::path& dir, const SyntheticSpec& spec) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw InputError(fmt::format("{}: cannot create directory: {}", dir.string(), ec.message()));
  const int64_t C = spec.hidden_size, F = spec.intermediate_size, D = C / spec.num_heads;
  const int64_t q = spec.num_heads * D, kv = spec.num_kv_heads * D;
  std::mt19937_64 rng(spec.seed);
  std::vector<NamedTensor> tensors;
  tensors.push_back(random_tensor(rng, "model.embed_tokens.weight", {spec.vocab_size, C}, 1.0));
  for (int64_t l = 0; l < spec.num_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    tensors.push_back(random_tensor(rng, p + "input_layernorm.weight", {C}, 0.1, 1.0));
    tensors.push_back(random_tensor(rng, p + "post_attention_layernorm.weight", {C}, 0.1, 1.0));
    const Shape shapes[kNumComponents] = {{q, C}, {kv, C}, {kv, C}, {C, q}, {F, C}, {F, C}, {C, F}};
    for (Component c : kAllComponents) {
      const Shape& s = shapes[static_cast<int>(c)];
      tensors.push_back(random_tensor(rng, component_tensor_name(l, c), s, 1.0 / std::sqrt(static_cast<double>(s[1]))));
    }
  }
  tensors.push_back(random_tensor(rng, "model.norm.weight", {C}, 0.1, 1.0));
  tensors.push_back(random_tensor(rng, "lm_head.weight", {spec.vocab_size, C}, 3.0 / std::sqrt(static_cast<double>(C))));

  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}, {"generator", "divprune synthetic"}, {"seed", std::to_string(spec.seed)}};
  size_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const size_t bytes = t.half.size() * 2;
    header[t.name] = {{"dtype", "F16"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section 8-byte aligned, as the format recommends
  std::ofstream out(dir / "model.safetensors", std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(fmt::format("{}: cannot write", (dir / "model.safetensors").string()));
  const uint64_t header_len = text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const NamedTensor& t : tensors)
    out.write(reinterpret_cast<const char*>(t.half.data()), static_cast<std::streamsize>(t.half.size() * 2));
  out.close();
  if (!out) throw InputError(fmt::format("{}: write failed", (dir / "model.safetensors").string()));

  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"vocab_size", spec.vocab_size},
                           {"hidden_size", C},
                           {"intermediate_size", F},
                           {"num_hidden_layers", spec.num_layers},
                           {"num_attention_heads", spec.num_heads},
                           {"num_key_value_heads", spec.num_kv_heads},
                           {"max_position_embeddings", spec.max_seq_len},
                           {"rms_norm_eps", 1e-5},
                           {"rope_theta", 10000.0},
                           {"hidden_act", "silu"},
                           {"tie_word_embeddings", false},
                           {"torch_dtype", "float16"},
                           {"bos_token_id", 1},
                           {"eos_token_id", 2}};
  std::ofstream cfg(dir / "config.json", std::ios::trunc);
  cfg << config.dump(2) << "\n";
  cfg.close();  // flushed before it is parsed back below
  if (!cfg) throw InputError(fmt::format("{}: write failed", (dir / "config.json").string()));
  return parse_hf_config(dir / "config.json");
}

}  // namespace divprune

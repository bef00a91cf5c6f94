#include "model/config.hpp"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace divprune {

int64_t ModelConfig::layer_linear_parameters() const {
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  return hidden_size * q + 2 * hidden_size * kv + q * hidden_size + 3 * hidden_size * intermediate_size;
}

int64_t ModelConfig::parameter_count() const {
  const int64_t per_layer = layer_linear_parameters() + 2 * hidden_size;
  const int64_t embed = vocab_size * hidden_size;
  return embed + num_layers * per_layer + hidden_size + (tie_word_embeddings ? 0 : embed);
}

void validate_config(const ModelConfig& c) {
  auto positive = [&](int64_t value, const char* key) {
    if (value <= 0) throw InputError(fmt::format("{}: {} must be positive, found {}", c.source, key, value));
  };
  positive(c.vocab_size, "vocab_size");
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_layers, "num_hidden_layers");
  positive(c.num_heads, "num_attention_heads");
  positive(c.num_kv_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  positive(c.max_seq_len, "max_position_embeddings");
  if (c.num_heads % c.num_kv_heads != 0)
    throw InputError(fmt::format("{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", c.source,
                                 c.num_heads, c.num_kv_heads));
  if (c.head_dim % 2 != 0)
    throw InputError(fmt::format("{}: head_dim {} must be even for rotary embeddings", c.source, c.head_dim));
  if (!(c.rms_norm_eps > 0.0f) || !(c.rope_theta > 0.0f))
    throw InputError(fmt::format("{}: rms_norm_eps and rope_theta must be positive", c.source));
}

namespace {

using nlohmann::json;

// The value of `key` as T. nlohmann's get<int64_t> truncates 64.9 to 64 and wraps out-of-range integers: an
// integer key must hold an integer JSON number that fits T.
template <typename T>
T value_as(const json& j, const char* key, const std::string& source) {
  const json& v = j.at(key);
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (v.is_number_float())
      throw InputError(fmt::format("{}: key \"{}\" must be an integer (found {})", source, key, v.dump()));
    const bool fits = !v.is_number_integer() ||  // a string or the like: "has the wrong type" below
                      (v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
                                              : v.get<int64_t>() >= std::numeric_limits<T>::min() &&
                                                    v.get<int64_t>() <= std::numeric_limits<T>::max());
    if (!fits)
      throw InputError(fmt::format("{}: key \"{}\" is out of range (found {}, at most {})", source, key, v.dump(),
                                   std::numeric_limits<T>::max()));
  }
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    throw InputError(fmt::format("{}: key \"{}\" has the wrong type (found {})", source, key, v.dump()));
  }
}

template <typename T>
T required(const json& j, const char* key, const std::string& source) {
  if (!j.contains(key)) throw InputError(fmt::format("{}: missing key \"{}\"", source, key));
  return value_as<T>(j, key, source);
}

template <typename T>
T optional(const json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return value_as<T>(j, key, source);
}

}  // namespace

ModelConfig parse_hf_config_text(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e400
    throw InputError(fmt::format("{}: malformed JSON: {}", source, e.what()));
  }
  if (!j.is_object()) throw InputError(fmt::format("{}: expected a JSON object", source));
  const std::string model_type = optional<std::string>(j, "model_type", "llama", source);
  if (model_type != "llama")
    throw InputError(fmt::format("{}: model_type \"{}\" is not supported (expected llama)", source, model_type));
  const std::string act = optional<std::string>(j, "hidden_act", "silu", source);
  if (act != "silu") throw InputError(fmt::format("{}: hidden_act \"{}\" is not supported (expected silu)", source, act));
  if (optional<bool>(j, "attention_bias", false, source) || optional<bool>(j, "mlp_bias", false, source))
    throw InputError(fmt::format("{}: attention_bias/mlp_bias are not supported by Llama-2", source));

  ModelConfig c;
  c.source = source;
  c.vocab_size = required<int64_t>(j, "vocab_size", source);
  c.hidden_size = required<int64_t>(j, "hidden_size", source);
  c.intermediate_size = required<int64_t>(j, "intermediate_size", source);
  c.num_layers = required<int64_t>(j, "num_hidden_layers", source);
  c.num_heads = required<int64_t>(j, "num_attention_heads", source);
  c.num_kv_heads = optional<int64_t>(j, "num_key_value_heads", c.num_heads, source);
  c.head_dim = optional<int64_t>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0, source);
  c.max_seq_len = optional<int64_t>(j, "max_position_embeddings", 4096, source);
  c.rms_norm_eps = static_cast<float>(optional<double>(j, "rms_norm_eps", 1e-6, source));
  c.tie_word_embeddings = optional<bool>(j, "tie_word_embeddings", false, source);
  c.bos_id = optional<int32_t>(j, "bos_token_id", 1, source);
  c.eos_id = optional<int32_t>(j, "eos_token_id", 2, source);

  // rope_theta: classic top-level key, or the newer rope_parameters object; rope scaling is not Llama-2.
  double theta = optional<double>(j, "rope_theta", 10000.0, source);
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    const json& rp = j["rope_parameters"];
    theta = optional<double>(rp, "rope_theta", theta, source);
    const std::string type = optional<std::string>(rp, "rope_type", "default", source);
    if (type != "default")
      throw InputError(fmt::format("{}: rope_parameters.rope_type \"{}\" is not supported (expected default)", source, type));
  }
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    throw InputError(fmt::format("{}: rope_scaling is not supported (Llama-2 uses plain RoPE)", source));
  c.rope_theta = static_cast<float>(theta);

  std::string dtype_name = optional<std::string>(j, "torch_dtype", "", source);
  if (dtype_name.empty()) dtype_name = optional<std::string>(j, "dtype", "float32", source);
  c.dtype = parse_dtype(dtype_name, source);
  validate_config(c);
  return c;
}

ModelConfig parse_hf_config(const std::filesystem::path& path) {
  return parse_hf_config_text(read_input_file(path, "config file"), path.string());
}

}  // namespace divprune

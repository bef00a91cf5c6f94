#include "model/hf_export.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "model/safetensors_writer.hpp"

namespace divprune {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// "out/" names the folder "out": drop a trailing separator so parent_path()/filename() mean what they say.
fs::path folder_path(const fs::path& out) {
  fs::path p = out.lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p;
}

// Files a Hugging Face model directory may carry beside the weights, copied when present.
constexpr const char* kTokenizerFiles[] = {"tokenizer.model",     "tokenizer.json",          "tokenizer_config.json",
                                           "special_tokens_map.json", "added_tokens.json", "generation_config.json"};

// The config of a llama2.c checkpoint in Hugging Face's classic layout (what its header implies).
ordered_json config_from_header(const ModelConfig& c) {
  // Floats as their shortest decimal form (1e-05, not 9.99999974e-06): they parse back to the same float.
  const auto as_double = [](float v) { return std::stod(fmt::format("{}", v)); };
  return ordered_json{{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_act", "silu"},
                      {"attention_bias", false},
                      {"mlp_bias", false},
                      {"vocab_size", c.vocab_size},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.num_layers},
                      {"num_attention_heads", c.num_heads},
                      {"num_key_value_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},
                      {"max_position_embeddings", c.max_seq_len},
                      {"rms_norm_eps", as_double(c.rms_norm_eps)},
                      {"rope_theta", as_double(c.rope_theta)},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"bos_token_id", c.bos_id},
                      {"eos_token_id", c.eos_id},
                      {"torch_dtype", "float32"}};
}

ordered_json export_config(const Checkpoint& checkpoint, const fs::path& model, const std::vector<bool>& removed,
                           DType dtype, bool tied) {
  ordered_json j;
  if (fs::is_directory(model)) {
    const fs::path file = model / "config.json";
    j = ordered_json::parse(read_input_file(file, "config file"));  // parsed and validated once already
  } else {
    j = config_from_header(checkpoint.config());
  }
  int64_t kept = 0;
  for (bool r : removed) kept += r ? 0 : 1;
  j["num_hidden_layers"] = kept;
  // Newer configs list one attention type per layer: keep the entries of the layers kept.
  if (j.contains("layer_types") && j["layer_types"].is_array() && j["layer_types"].size() == removed.size()) {
    ordered_json types = ordered_json::array();
    for (size_t l = 0; l < removed.size(); ++l)
      if (!removed[l]) types.push_back(j["layer_types"][l]);
    j["layer_types"] = types;
  }
  // The classic key, and the newer one where the input uses it (transformers >= 4.56 reads `dtype`).
  const std::string name(dtype_name(dtype));
  if (j.contains("dtype")) j["dtype"] = name;
  if (j.contains("torch_dtype") || !j.contains("dtype")) j["torch_dtype"] = name;
  j["tie_word_embeddings"] = tied;
  return j;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) throw IoError(fmt::format("{}: cannot write", path.string()));
}

// The staging folder: removed on destruction unless committed, so an exception leaves nothing behind.
class StagingDir {
 public:
  explicit StagingDir(const fs::path& out) : out_(out) {
    path_ = out.parent_path() / fmt::format("{}.partial-{}", out.filename().string(), ::getpid());
    std::error_code ec;
    if (!out.parent_path().empty()) fs::create_directories(out.parent_path(), ec);
    fs::remove_all(path_, ec);  // a leftover of an earlier process with our pid
    if (!fs::create_directory(path_, ec) || ec)
      throw IoError(fmt::format("{}: cannot create the staging folder: {}", path_.string(), ec.message()));
  }
  ~StagingDir() {
    if (!committed_) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  const fs::path& path() const { return path_; }

  // Moves the finished folder to OUT. rename(2) replaces an empty directory atomically; a non-empty one (allowed
  // by --force) is first moved aside and deleted after, so OUT is always either the old or the new model.
  void commit() {
    std::error_code ec;
    fs::path aside;
    if (fs::exists(out_, ec) && !fs::is_empty(out_, ec)) {
      aside = out_.parent_path() / fmt::format("{}.replaced-{}", out_.filename().string(), ::getpid());
      fs::remove_all(aside, ec);
      fs::rename(out_, aside, ec);
      if (ec) throw IoError(fmt::format("{}: cannot move the old directory aside: {}", out_.string(), ec.message()));
    }
    fs::rename(path_, out_, ec);
    if (ec) throw IoError(fmt::format("{}: cannot rename {} to it: {}", out_.string(), path_.string(), ec.message()));
    committed_ = true;
    if (!aside.empty()) fs::remove_all(aside, ec);
  }

 private:
  fs::path out_, path_;
  bool committed_ = false;
};

}  // namespace

void check_export_destination(const fs::path& out_arg, const fs::path& model, bool force) {
  const fs::path out = folder_path(out_arg);
  std::error_code ec;
  if (out.empty()) throw InputError("--out: empty path");
  if (fs::exists(model, ec) && fs::exists(out, ec) && fs::equivalent(model, out, ec))
    throw InputError(fmt::format("{}: --out is the input model itself; choose another directory", out.string()));
  if (!fs::exists(out, ec)) {
    // A parent that exists as a file would fail the rename at the very end: say it now.
    for (fs::path p = out.parent_path(); !p.empty(); p = p.parent_path()) {
      if (fs::exists(p, ec)) {
        if (!fs::is_directory(p, ec))
          throw InputError(fmt::format("{}: cannot write the export: {} is {}, not a directory", out.string(),
                                       p.string(), file_kind(p)));
        break;
      }
      if (p == p.parent_path()) break;
    }
    return;
  }
  if (!fs::is_directory(out, ec))
    throw InputError(fmt::format("{}: --out exists and is {}, expected a directory", out.string(), file_kind(out)));
  if (fs::is_empty(out, ec)) return;
  if (!force)
    throw InputError(fmt::format("{}: --out is a non-empty directory; pass --force to replace it", out.string()));
  if (!fs::exists(out / "config.json", ec))
    throw InputError(fmt::format("{}: --force replaces only a model directory (with config.json); this one has none",
                                 out.string()));
}

uint64_t parse_byte_size(const std::string& text, const std::string& option) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::pair<const char*, uint64_t> units[] = {{"", 1},          {"B", 1},           {"KB", 1000ull},
                                                    {"MB", 1000000ull}, {"GB", 1000000000ull}, {"KIB", 1ull << 10},
                                                    {"MIB", 1ull << 20}, {"GIB", 1ull << 30}};
  const auto bad = [&] {
    return InputError(fmt::format("{}: expected a positive size in bytes with an optional unit (KB, MB, GB, KiB, MiB, "
                                  "GiB), found \"{}\"",
                                  option, text));
  };
  if (digits == 0 || digits > 15) throw bad();
  const uint64_t number = std::stoull(text.substr(0, digits));
  for (const auto& [name, factor] : units) {
    if (unit != name) continue;
    uint64_t bytes = 0;
    if (number == 0 || __builtin_mul_overflow(number, factor, &bytes)) throw bad();
    return bytes;
  }
  throw bad();
}

std::vector<std::string> export_hf_directory(const Checkpoint& checkpoint, const fs::path& model,
                                             const HostWeights& weights, const std::vector<bool>& removed,
                                             const fs::path& out_arg, const HfExportOptions& options) {
  const ModelConfig& c = checkpoint.config();
  EXPECTS(weights.layout.shard.size == 1, "export needs the whole model (tp = 1)");
  EXPECTS(removed.size() == weights.layers.size() && static_cast<int64_t>(removed.size()) == c.num_layers,
          "removed flags, weights and config disagree on the layer count");
  check_export_destination(out_arg, model, options.force);
  const fs::path out = folder_path(out_arg);

  const bool tied = c.tie_word_embeddings && weights.lm_head.data == weights.embed.data;
  const int64_t C = c.hidden_size;
  std::vector<SafetensorsTensor> tensors;
  const auto matrix = [&](std::string name, const HostMatrix& m) {
    tensors.push_back({std::move(name), {m.rows, m.cols}, m.data});
  };
  const auto vector = [&](std::string name, const std::vector<float>& v) {
    tensors.push_back({std::move(name), {static_cast<int64_t>(v.size())}, v});
  };
  EXPECTS(weights.embed.rows == c.vocab_size && weights.embed.cols == C, "export needs the whole vocabulary");
  matrix("model.embed_tokens.weight", weights.embed);
  int64_t next = 0;  // the renumbered index of the next kept layer
  for (size_t l = 0; l < weights.layers.size(); ++l) {
    if (removed[l]) continue;
    const HostLayer& layer = weights.layers[l];
    vector(fmt::format("model.layers.{}.input_layernorm.weight", next), layer.attn_norm);
    for (Component comp : kAllComponents) {
      matrix(component_tensor_name(next, comp), layer.linear[comp]);
      if (comp == Component::O)
        vector(fmt::format("model.layers.{}.post_attention_layernorm.weight", next), layer.ffn_norm);
    }
    ++next;
  }
  vector("model.norm.weight", weights.final_norm);
  if (!tied) matrix("lm_head.weight", weights.lm_head);

  StagingDir staging(out);
  std::vector<std::string> files = write_safetensors_shards(staging.path(), tensors, options.dtype, options.max_shard_bytes);
  write_text(staging.path() / "config.json",
             export_config(checkpoint, model, removed, options.dtype, tied).dump(2) + "\n");
  files.insert(files.begin(), "config.json");
  if (fs::is_directory(model)) {
    for (const char* name : kTokenizerFiles) {
      std::error_code ec;
      const fs::path from = model / name;
      if (!fs::is_regular_file(from, ec)) continue;  // absent (or a FIFO and the like: never opened)
      fs::copy_file(from, staging.path() / name, fs::copy_options::overwrite_existing, ec);
      if (ec) throw IoError(fmt::format("{}: cannot copy to the export: {}", from.string(), ec.message()));
      files.push_back(name);
    }
  }
  staging.commit();
  return files;
}

}  // namespace divprune

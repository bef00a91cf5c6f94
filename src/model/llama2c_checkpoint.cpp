#include "model/llama2c_checkpoint.hpp"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <regex>

#include "core/errors.hpp"
#include "model/mapped_file.hpp"
#include "model/safetensors.hpp"

namespace divprune {

namespace {

class Llama2cCheckpoint final : public Checkpoint {
 public:
  explicit Llama2cCheckpoint(const std::filesystem::path& path) : file_(path, "the llama2.c checkpoint") {
    const std::string where = path.string();
    int32_t header[7];
    if (file_.size() < sizeof(header))
      throw InputError(fmt::format("{}: truncated: {} bytes, too short for the 28-byte llama2.c header", where, file_.size()));
    std::memcpy(header, file_.bytes().data(), sizeof(header));
    config_.source = where;
    config_.hidden_size = header[0];
    config_.intermediate_size = header[1];
    config_.num_layers = header[2];
    config_.num_heads = header[3];
    config_.num_kv_heads = header[4];
    const bool shared_classifier = header[5] > 0;
    config_.vocab_size = header[5] > 0 ? header[5] : -static_cast<int64_t>(header[5]);
    config_.max_seq_len = header[6];
    config_.head_dim = config_.num_heads > 0 ? config_.hidden_size / config_.num_heads : 0;
    config_.tie_word_embeddings = shared_classifier;
    config_.rms_norm_eps = 1e-5f;
    config_.rope_theta = 10000.0f;
    config_.dtype = DType::F32;
    validate_config(config_);
    if (config_.head_dim * config_.num_heads != config_.hidden_size)
      throw InputError(fmt::format("{}: dim {} is not a multiple of n_heads {}", where, config_.hidden_size, config_.num_heads));

    const int64_t C = config_.hidden_size, F = config_.intermediate_size, L = config_.num_layers;
    const int64_t D = config_.head_dim, V = config_.vocab_size;
    const int64_t q = config_.num_heads * D, kv = config_.num_kv_heads * D;
    // Byte offsets with overflow checked: crafted int32 header fields multiply to more than 64 bits.
    uint64_t offset = sizeof(header);
    bool overflow = false;
    auto add = [&](const std::string& block, Shape shape, int64_t count) {
      blocks_[block] = Block{static_cast<size_t>(offset), shape};
      uint64_t bytes = sizeof(float) * static_cast<uint64_t>(count);
      for (int64_t d : shape) overflow |= __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes);
      overflow |= __builtin_add_overflow(offset, bytes, &offset);
    };
    add("embed", {V, C}, 1);
    add("rms_att", {C}, L);
    add("wq", {q, C}, L);
    add("wk", {kv, C}, L);
    add("wv", {kv, C}, L);
    add("wo", {C, q}, L);
    add("rms_ffn", {C}, L);
    add("w1", {F, C}, L);
    add("w2", {C, F}, L);
    add("w3", {F, C}, L);
    add("rms_final", {C}, 1);
    add("freq_cis", {config_.max_seq_len, D}, 1);  // real and imaginary halves, D/2 each: skipped
    if (!shared_classifier) add("wcls", {V, C}, 1);
    if (overflow)
      throw InputError(fmt::format("{}: the header's sizes (dim {}, hidden_dim {}, n_layers {}, vocab {}, seq_len {}) "
                                   "overflow 64-bit byte offsets", where, C, F, L, V, config_.max_seq_len));
    if (offset > file_.size())
      throw InputError(fmt::format("{}: truncated: the header describes {} bytes of weights, the file has {}", where,
                                   offset, file_.size()));
    // The file must end where the header says: trailing bytes mean the header disagrees with the data (e.g. fewer
    // layers declared than written), and every tensor after the first wrong size would be read misaligned.
    if (offset < file_.size())
      throw InputError(fmt::format("{}: {} trailing bytes: the header describes {} bytes (n_layers {}), the file has {}",
                                   where, file_.size() - offset, offset, L, file_.size()));
  }

  const ModelConfig& config() const override { return config_; }
  std::string format() const override { return "llama2.c"; }
  std::vector<std::string> files() const override { return {file_.path().string()}; }
  bool contains(const std::string& name) const override {
    try {
      locate(name);
      return true;
    } catch (const InputError&) {
      return false;
    }
  }

  TensorMeta meta(const std::string& name) const override {
    Location loc = locate(name);
    return TensorMeta{DType::F32, blocks_.at(loc.block).shape, file_.path().string()};
  }

  void read(const std::string& name, Range rows, Range cols, std::span<float> out) const override {
    Location loc = locate(name);
    const Block& block = blocks_.at(loc.block);
    const int64_t n_cols = block.shape.back();
    const int64_t n_rows = block.shape.size() == 1 ? 1 : block.shape[0];
    EXPECTS(rows.begin >= 0 && rows.end <= n_rows && cols.begin >= 0 && cols.end <= n_cols &&
                static_cast<int64_t>(out.size()) == rows.size() * cols.size(),
            fmt::format("slice of {}", name));
    const std::byte* base = file_.bytes().data() + block.offset +
                            static_cast<size_t>(loc.layer * n_rows * n_cols) * sizeof(float);
    const bool rotary = loc.block == "wq" || loc.block == "wk";
    const int64_t D = config_.head_dim;
    for (int64_t r = rows.begin; r < rows.end; ++r) {
      int64_t source_row = r;
      if (rotary) {  // HF row (head, half, i) holds llama2.c row (head, 2 i + half)
        const int64_t head = r / D, within = r % D, half = within / (D / 2), i = within % (D / 2);
        source_row = head * D + 2 * i + half;
      }
      convert_to_f32(base + static_cast<size_t>(source_row * n_cols + cols.begin) * sizeof(float), DType::F32,
                     static_cast<size_t>(cols.size()), out.data() + (r - rows.begin) * cols.size());
    }
  }

 private:
  struct Block {
    size_t offset = 0;
    Shape shape;  // of one layer's slice
  };
  struct Location {
    std::string block;
    int64_t layer = 0;
  };

  Location locate(const std::string& name) const {
    static const std::map<std::string, std::string> layer_blocks = {
        {"input_layernorm.weight", "rms_att"},  {"self_attn.q_proj.weight", "wq"},
        {"self_attn.k_proj.weight", "wk"},      {"self_attn.v_proj.weight", "wv"},
        {"self_attn.o_proj.weight", "wo"},      {"post_attention_layernorm.weight", "rms_ffn"},
        {"mlp.gate_proj.weight", "w1"},         {"mlp.down_proj.weight", "w2"},
        {"mlp.up_proj.weight", "w3"}};
    if (name == "model.embed_tokens.weight") return {"embed", 0};
    if (name == "model.norm.weight") return {"rms_final", 0};
    if (name == "lm_head.weight") return {config_.tie_word_embeddings ? "embed" : "wcls", 0};
    static const std::regex layer_name(R"(model\.layers\.(\d+)\.(.+))");
    std::smatch match;
    if (std::regex_match(name, match, layer_name)) {
      const int64_t layer = std::stoll(match[1].str());
      auto it = layer_blocks.find(match[2].str());
      if (it != layer_blocks.end() && layer < config_.num_layers) return {it->second, layer};
    }
    throw InputError(fmt::format("{}: missing tensor \"{}\"", file_.path().string(), name));
  }

  MappedFile file_;
  ModelConfig config_;
  std::map<std::string, Block> blocks_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_llama2c_checkpoint(const std::filesystem::path& path) {
  return std::make_unique<Llama2cCheckpoint>(path);
}

}  // namespace divprune

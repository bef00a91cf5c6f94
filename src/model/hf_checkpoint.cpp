// Hugging Face checkpoint directory: config.json plus model.safetensors, or shards listed in
// model.safetensors.index.json. Shards are opened (mapped and header-checked) up front.
#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "model/checkpoint.hpp"
#include "model/llama2c_checkpoint.hpp"
#include "model/safetensors.hpp"

namespace divprune {

namespace {

class HfCheckpoint final : public Checkpoint {
 public:
  explicit HfCheckpoint(const std::filesystem::path& dir) {
    config_ = parse_hf_config(dir / "config.json");
    const auto single = dir / "model.safetensors";
    const auto index = dir / "model.safetensors.index.json";
    if (std::filesystem::exists(index)) {
      load_index(dir, index);
    } else if (std::filesystem::exists(single)) {
      shards_.push_back(std::make_unique<SafetensorsFile>(single));
      for (const auto& name : shards_.back()->names()) where_[name] = 0;
    } else {
      throw InputError(fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir.string()));
    }
  }

  const ModelConfig& config() const override { return config_; }
  std::string format() const override { return "safetensors"; }
  std::vector<std::string> files() const override {
    std::vector<std::string> out{config_.source};
    for (const auto& shard : shards_) out.push_back(shard->path().string());
    return out;
  }
  bool contains(const std::string& name) const override { return where_.count(name) != 0; }
  TensorMeta meta(const std::string& name) const override { return shard_of(name).meta(name); }
  void read(const std::string& name, Range rows, Range cols, std::span<float> out) const override {
    shard_of(name).read(name, rows, cols, out);
  }

 private:
  void load_index(const std::filesystem::path& dir, const std::filesystem::path& index) {
    const std::string text = read_input_file(index, "the safetensors index");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number like 1e400
      throw InputError(fmt::format("{}: malformed JSON: {}", index.string(), e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw InputError(fmt::format("{}: missing object \"weight_map\"", index.string()));
    std::map<std::string, size_t> shard_index;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw InputError(fmt::format("{}: weight_map[\"{}\"] is not a file name", index.string(), name));
      const std::string file_name = file.get<std::string>();
      auto it = shard_index.find(file_name);
      if (it == shard_index.end()) {
        shards_.push_back(std::make_unique<SafetensorsFile>(dir / file_name));
        it = shard_index.emplace(file_name, shards_.size() - 1).first;
      }
      if (!shards_[it->second]->contains(name))
        throw InputError(fmt::format("{}: missing tensor \"{}\" (listed in {})", (dir / file_name).string(), name,
                                     index.filename().string()));
      where_[name] = it->second;
    }
  }

  const SafetensorsFile& shard_of(const std::string& name) const {
    auto it = where_.find(name);
    if (it == where_.end())
      throw InputError(fmt::format("{}: missing tensor \"{}\"",
                                   shards_.size() == 1 ? shards_[0]->path().string() : config_.source, name));
    return *shards_[it->second];
  }

  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;
};

}  // namespace

std::unique_ptr<Checkpoint> open_checkpoint(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw InputError(fmt::format("{}: no such file or directory", path.string()));
  if (std::filesystem::is_directory(path, ec)) return std::make_unique<HfCheckpoint>(path);
  return open_llama2c_checkpoint(path);
}

}  // namespace divprune

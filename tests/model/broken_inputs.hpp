#pragma once
// Broken checkpoints, built from the shared assets in a per-test temporary directory (the assets themselves
// are never modified). The library test (tests/model/test_bad_input.cpp) expects an InputError for each, and
// the CLI test (tests/cli/test_cli_bad_input.cpp) expects exit code 2 with one `divprune: error:` line; both
// check that the message names `file` and contains `problem`.
#include <sys/stat.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "tests/model/test_util.hpp"

namespace divprune::test {

struct BrokenInput {
  fs::path model;        // what is passed to open_checkpoint / --model
  fs::path file;         // the file the message must name
  std::string problem;   // a substring of the message
  bool needs_weights;    // detected only when the weights are loaded (not by open_checkpoint / `info`)
};

struct BrokenCase {
  const char* name;
  const char* asset;  // needed asset (relative to the assets dir)
  std::function<BrokenInput(const fs::path& tmp)> make;
};

inline fs::path mha_dir() { return assets_dir() / "tiny-llama2-mha"; }

// A copy of tiny-llama2-mha whose model.safetensors header is edited by `edit`.
inline fs::path mha_with_header(const fs::path& tmp, const std::function<void(nlohmann::ordered_json&)>& edit) {
  const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
  Safetensors st = read_safetensors(dir / "model.safetensors");
  edit(st.header);
  write_safetensors(dir / "model.safetensors", st);
  return dir;
}

// A copy of tiny-llama2-mha whose config.json is replaced by `text`.
inline fs::path mha_with_config_text(const fs::path& tmp, const std::string& text) {
  const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
  write_file(dir / "config.json", text);
  return dir;
}

inline fs::path mha_with_config(const fs::path& tmp, const std::function<void(nlohmann::ordered_json&)>& edit) {
  auto config = nlohmann::ordered_json::parse(read_file(mha_dir() / "config.json"));
  edit(config);
  return mha_with_config_text(tmp, config.dump(2));
}

// A copy of tiny-llama2-mha (F16 weights) whose element `index` (row-major) of `tensor` holds the F16 bit pattern
// `bits` (0x7E00: NaN, 0x7C00: +Inf).
inline fs::path mha_with_f16(const fs::path& tmp, const std::string& tensor, size_t index, uint16_t bits) {
  const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
  Safetensors st = read_safetensors(dir / "model.safetensors");
  const size_t begin = st.header[tensor]["data_offsets"][0].get<size_t>();
  std::memcpy(st.data.data() + begin + 2 * index, &bits, 2);
  write_safetensors(dir / "model.safetensors", st);
  return dir;
}

// A copy of tiny-llama2-mha in which `file` (relative to the directory) is a FIFO: opening it for reading would
// block until a writer comes, so a reader that does not refuse non-regular files hangs.
inline fs::path mha_with_fifo(const fs::path& tmp, const std::string& file) {
  const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
  fs::remove(dir / file);
  if (::mkfifo((dir / file).c_str(), 0600) != 0) throw std::runtime_error("test: mkfifo failed");
  return dir;
}

// stories260K.bin with its header field `field` (0: dim, ..., 2: n_layers, ...) replaced and `extra` bytes appended.
inline fs::path llama2c_with(const fs::path& tmp, int field, int32_t value, size_t extra) {
  std::string bytes = read_file(assets_dir() / "stories260K.bin");
  if (field >= 0) std::memcpy(bytes.data() + field * sizeof(int32_t), &value, sizeof(value));
  bytes.append(extra, '\0');
  write_file(tmp / "stories260K.bin", bytes);
  return tmp / "stories260K.bin";
}

inline const std::vector<BrokenCase>& broken_cases() {
  static const std::vector<BrokenCase> cases = {
      {"MissingPath", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         return BrokenInput{tmp / "no-such-model", tmp / "no-such-model", "no such file or directory", false};
       }},
      {"DirectoryWithoutWeights", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         fs::create_directories(tmp / "model");
         fs::copy_file(mha_dir() / "config.json", tmp / "model" / "config.json");
         return BrokenInput{tmp / "model", tmp / "model", "no model.safetensors", false};
       }},
      {"SafetensorsShorterThanLength", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         write_prefix(mha_dir() / "model.safetensors", dir / "model.safetensors", 5);
         return BrokenInput{dir, dir / "model.safetensors", "too short for the 8-byte header length", false};
       }},
      {"SafetensorsCutInsideHeader", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         write_prefix(mha_dir() / "model.safetensors", dir / "model.safetensors", 8 + 100);
         return BrokenInput{dir, dir / "model.safetensors", "is larger than the file", false};
       }},
      {"SafetensorsCutInsideData", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         write_prefix(mha_dir() / "model.safetensors", dir / "model.safetensors",
                      fs::file_size(mha_dir() / "model.safetensors") - 4096);
         return BrokenInput{dir, dir / "model.safetensors", "truncated: tensor", false};
       }},
      {"HeaderLengthLargerThanFile", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         std::string bytes = read_file(dir / "model.safetensors");
         const uint64_t len = bytes.size();  // 8 bytes more than the file could hold
         std::memcpy(bytes.data(), &len, 8);
         write_file(dir / "model.safetensors", bytes);
         return BrokenInput{dir, dir / "model.safetensors", "header length " + std::to_string(len), false};
       }},
      {"MalformedSafetensorsHeader", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         std::string bytes = read_file(dir / "model.safetensors");
         bytes[8] = '[';  // the header's opening brace: the JSON no longer parses
         write_file(dir / "model.safetensors", bytes);
         return BrokenInput{dir, dir / "model.safetensors", "malformed safetensors header", false};
       }},
      {"MalformedConfigJson", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const std::string text = read_file(mha_dir() / "config.json");
         const fs::path dir = mha_with_config_text(tmp, text.substr(0, text.size() / 2));
         return BrokenInput{dir, dir / "config.json", "malformed JSON", false};
       }},
      {"ConfigMissingKey", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c.erase("hidden_size"); });
         return BrokenInput{dir, dir / "config.json", "missing key \"hidden_size\"", false};
       }},
      {"ConfigWrongType", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["num_hidden_layers"] = "two"; });
         return BrokenInput{dir, dir / "config.json", "key \"num_hidden_layers\" has the wrong type", false};
       }},
      {"UnknownSafetensorsDtype", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir =
             mha_with_header(tmp, [](auto& h) { h["model.layers.0.self_attn.q_proj.weight"]["dtype"] = "F8"; });
         return BrokenInput{dir, dir / "model.safetensors", "unsupported dtype \"F8\"", false};
       }},
      {"UnknownConfigDtype", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["dtype"] = "int4"; });
         return BrokenInput{dir, dir / "config.json", "unknown dtype \"int4\"", false};
       }},
      {"UnknownClassicConfigDtype", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) {
           c.erase("dtype");
           c["torch_dtype"] = "int4";
         });
         return BrokenInput{dir, dir / "config.json", "unknown dtype \"int4\"", false};
       }},
      {"HeadsNotDividingKvHeads", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["num_key_value_heads"] = 3; });
         return BrokenInput{dir, dir / "config.json", "is not a multiple of num_key_value_heads 3", false};
       }},
      {"ConfigHiddenSizeMismatch", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["hidden_size"] = 128; });
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.embed_tokens.weight\" has shape [32000, 64], the config", true};
       }},
      {"HeaderShapeMismatch", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         // Same element count, so the header itself is consistent: only the config check can catch it.
         const fs::path dir = mha_with_header(
             tmp, [](auto& h) { h["model.layers.1.mlp.up_proj.weight"]["shape"] = nlohmann::json::array({88, 128}); });
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.layers.1.mlp.up_proj.weight\" has shape [88, 128]", true};
       }},
      {"HeaderBytesDoNotMatchShape", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_header(
             tmp, [](auto& h) { h["model.norm.weight"]["shape"] = nlohmann::json::array({65}); });
         return BrokenInput{dir, dir / "model.safetensors", "tensor \"model.norm.weight\" has 128 data bytes", false};
       }},
      {"MissingTensor", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_header(tmp, [](auto& h) { h.erase("model.layers.1.mlp.down_proj.weight"); });
         return BrokenInput{dir, dir / "model.safetensors", "missing tensor \"model.layers.1.mlp.down_proj.weight\"",
                            true};
       }},
      {"IndexNamesMissingShard", "tiny-llama2-trained/config.json",
       [](const fs::path& tmp) {
         const fs::path trained = assets_dir() / "tiny-llama2-trained";
         const fs::path dir = tmp / "model";
         fs::create_directories(dir);
         fs::copy_file(trained / "config.json", dir / "config.json");
         auto index = nlohmann::ordered_json::parse(read_file(trained / "model.safetensors.index.json"));
         for (auto& [name, file] : index["weight_map"].items()) file = "model-00009-of-00003.safetensors";
         write_file(dir / "model.safetensors.index.json", index.dump(2));
         return BrokenInput{dir, dir / "model-00009-of-00003.safetensors", "cannot open", false};
       }},
      {"Llama2cShorterThanHeader", "stories260K.bin",
       [](const fs::path& tmp) {
         write_prefix(assets_dir() / "stories260K.bin", tmp / "stories260K.bin", 20);
         return BrokenInput{tmp / "stories260K.bin", tmp / "stories260K.bin", "too short for the 28-byte", false};
       }},
      {"Llama2cTruncatedWeights", "stories260K.bin",
       [](const fs::path& tmp) {
         write_prefix(assets_dir() / "stories260K.bin", tmp / "stories260K.bin",
                      fs::file_size(assets_dir() / "stories260K.bin") / 2);
         return BrokenInput{tmp / "stories260K.bin", tmp / "stories260K.bin", "truncated: the header describes", false};
       }},
      {"Llama2cBadHeader", "stories260K.bin",
       [](const fs::path& tmp) {
         std::string bytes = read_file(assets_dir() / "stories260K.bin");
         const int32_t kv_heads = 3;  // 8 query heads are not a multiple of 3 KV heads
         std::memcpy(bytes.data() + 4 * sizeof(int32_t), &kv_heads, sizeof(kv_heads));
         write_file(tmp / "stories260K.bin", bytes);
         return BrokenInput{tmp / "stories260K.bin", tmp / "stories260K.bin", "num_key_value_heads 3", false};
       }},
      // Issue 14: hostile inputs that used to pass silently, hang or crash.
      {"NanWeight", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_f16(tmp, "model.layers.1.mlp.up_proj.weight", 3 * 64 + 5, 0x7E00);
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.layers.1.mlp.up_proj.weight\" holds a non-finite value (nan) at index [3, 5]",
                            true};
       }},
      {"InfNormWeight", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_f16(tmp, "model.norm.weight", 7, 0x7C00);
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.norm.weight\" holds a non-finite value (inf) at index [7]", true};
       }},
      {"ShapeProductOverflows", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         // (2^62 + 16) * 4 elements wraps around to 64 elements of 2 bytes: exactly the 128 bytes the data holds.
         const fs::path dir = mha_with_header(tmp, [](auto& h) {
           h["model.norm.weight"]["shape"] = nlohmann::json::array({4611686018427387920ull, 4});
         });
         return BrokenInput{dir, dir / "model.safetensors", "whose size overflows 64 bits", false};
       }},
      {"FloatDataOffsets", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_header(tmp, [](auto& h) {
           auto& offsets = h["model.norm.weight"]["data_offsets"];
           offsets = nlohmann::json::array({offsets[0].template get<double>() + 0.5, offsets[1].template get<double>() + 0.5});
         });
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.norm.weight\": data_offsets must hold non-negative integers", false};
       }},
      {"FloatShape", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir =
             mha_with_header(tmp, [](auto& h) { h["model.norm.weight"]["shape"] = nlohmann::json::array({64.5}); });
         return BrokenInput{dir, dir / "model.safetensors",
                            "tensor \"model.norm.weight\": shape must hold non-negative integers, found 64.5", false};
       }},
      {"OverlappingTensors", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         // Same size, same bytes: the final norm would silently alias layer 0's attention norm.
         const fs::path dir = mha_with_header(tmp, [](auto& h) {
           h["model.norm.weight"]["data_offsets"] = h["model.layers.0.input_layernorm.weight"]["data_offsets"];
         });
         return BrokenInput{dir, dir / "model.safetensors", "overlap (data bytes [8192000, 8192128)", false};
       }},
      {"NulPaddedHeader", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
         const Safetensors st = read_safetensors(dir / "model.safetensors");
         std::string header = st.header.dump();
         header.append(8 - header.size() % 8, '\0');  // 1 to 8 NULs where the format pads with spaces
         const uint64_t len = header.size();
         std::string bytes(8, '\0');
         std::memcpy(bytes.data(), &len, 8);
         write_file(dir / "model.safetensors", bytes + header + st.data);
         return BrokenInput{dir, dir / "model.safetensors", "safetensors header holds a NUL byte", false};
       }},
      {"ConfigFloatHiddenSize", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["hidden_size"] = 64.9; });
         return BrokenInput{dir, dir / "config.json", "key \"hidden_size\" must be an integer (found 64.9)", false};
       }},
      {"ConfigBosOutOfRange", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_config(tmp, [](auto& c) { c["bos_token_id"] = 4294967297ull; });
         return BrokenInput{dir, dir / "config.json", "key \"bos_token_id\" is out of range (found 4294967297", false};
       }},
      {"ConfigJsonIsFifo", "tiny-llama2-mha/config.json",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_fifo(tmp, "config.json");
         return BrokenInput{dir, dir / "config.json", "not a regular file (a FIFO)", false};
       }},
      {"SafetensorsIsFifo", "tiny-llama2-mha/model.safetensors",
       [](const fs::path& tmp) {
         const fs::path dir = mha_with_fifo(tmp, "model.safetensors");
         return BrokenInput{dir, dir / "model.safetensors", "not a regular file (a FIFO)", false};
       }},
      {"Llama2cIsFifo", "stories260K.bin",
       [](const fs::path& tmp) {
         if (::mkfifo((tmp / "stories260K.bin").c_str(), 0600) != 0) throw std::runtime_error("test: mkfifo failed");
         return BrokenInput{tmp / "stories260K.bin", tmp / "stories260K.bin", "not a regular file (a FIFO)", false};
       }},
      {"Llama2cTrailingBytes", "stories260K.bin",
       [](const fs::path& tmp) {
         const fs::path bin = llama2c_with(tmp, -1, 0, 4);
         return BrokenInput{bin, bin, "4 trailing bytes", false};
       }},
      {"Llama2cFewerLayersThanData", "stories260K.bin",
       [](const fs::path& tmp) {
         const fs::path bin = llama2c_with(tmp, 2, 4, 0);  // the file holds 5 layers
         return BrokenInput{bin, bin, "trailing bytes: the header describes", false};
       }},
      {"Llama2cSizesOverflow", "stories260K.bin",
       [](const fs::path& tmp) {
         // dim 2^30 with one head: embed alone is 512 * 2^30 * 4 bytes, the layers 2^31 times 2^60 bytes.
         std::string bytes = read_file(assets_dir() / "stories260K.bin");
         const int32_t header[7] = {1 << 30, 1 << 30, 2147483647, 1, 1, 512, 2};
         std::memcpy(bytes.data(), header, sizeof(header));
         write_file(tmp / "stories260K.bin", bytes);
         return BrokenInput{tmp / "stories260K.bin", tmp / "stories260K.bin", "overflow 64-bit byte offsets", false};
       }},
  };
  return cases;
}

inline std::string broken_case_name(const ::testing::TestParamInfo<size_t>& info) {
  return broken_cases()[info.param].name;
}

}  // namespace divprune::test

#pragma once
// Helpers shared by the model and CLI tests: a per-test temporary directory, whole-file I/O, rewriting a
// safetensors file (header JSON + data), and a model loaded through the library on the CPU backend (tp = 1).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/communicator.hpp"
#include "core/errors.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/shard.hpp"
#include "model/weights.hpp"
#include "tests/support/assets.hpp"

namespace divprune::test {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, named after the running test, removed on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::string name = "divprune-test";
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
      name += std::string("-") + info->test_suite_name() + "-" + info->name();
    }
    for (char& c : name)
      if (c == '/' || c == ' ') c = '_';
    path_ = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("test: cannot read " + path.string());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("test: cannot write " + path.string());
}

// Copies a file's first `bytes` bytes (a truncated copy).
inline void write_prefix(const fs::path& from, const fs::path& to, size_t bytes) {
  const std::string all = read_file(from);
  write_file(to, all.substr(0, std::min(bytes, all.size())));
}

// A copy of an asset checkpoint directory (regular files only) that a test may break.
inline fs::path copy_checkpoint_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from))
    if (entry.is_regular_file() && entry.path().extension() != ".h5")
      fs::copy_file(entry.path(), to / entry.path().filename(), fs::copy_options::overwrite_existing);
  return to;
}

// A safetensors file split into its header (JSON) and its data section.
struct Safetensors {
  nlohmann::ordered_json header;
  std::string data;
};

inline Safetensors read_safetensors(const fs::path& path) {
  const std::string all = read_file(path);
  uint64_t len = 0;
  std::memcpy(&len, all.data(), 8);
  Safetensors st;
  st.header = nlohmann::ordered_json::parse(all.substr(8, len));
  st.data = all.substr(8 + len);
  return st;
}

// Writes header + data; the header is padded with spaces to a multiple of 8 bytes as the format recommends.
inline void write_safetensors(const fs::path& path, const Safetensors& st) {
  std::string header = st.header.dump();
  while (header.size() % 8 != 0) header.push_back(' ');
  const uint64_t len = header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &len, 8);
  write_file(path, bytes + header + st.data);
}

// A model loaded through the library exactly as a tp = 1 CPU replica does, without MPI.
struct LoadedModel {
  std::unique_ptr<Checkpoint> checkpoint;
  CpuBackend backend;
  SoloCommunicator comm;
  std::unique_ptr<LlamaModel> model;

  // Runs ids at positions 0..n-1 with a fresh KV cache; returns the (n, vocab) logits on the host.
  std::vector<float> logits(const std::vector<int32_t>& ids) {
    KvCache cache = model->make_cache(static_cast<int64_t>(ids.size()));
    Tensor out = model->forward(ids, 0, cache);
    std::vector<float> host(static_cast<size_t>(out.numel()));
    backend.download(out, host);
    return host;
  }
};

inline std::unique_ptr<LoadedModel> load_model(const fs::path& path) {
  auto loaded = std::make_unique<LoadedModel>();
  loaded->checkpoint = open_checkpoint(path);
  const ModelConfig& config = loaded->checkpoint->config();
  const ShardLayout layout = make_shard_layout(config, TpShard{0, 1});
  HostWeights host = load_host_weights(*loaded->checkpoint, layout);
  loaded->model = std::make_unique<LlamaModel>(config, layout, loaded->backend, loaded->comm,
                                               upload_weights(loaded->backend, host));
  return loaded;
}

// Whitespace-separated integers of a text file (stories260K.greedy128.txt).
inline std::vector<int32_t> read_ids(const fs::path& path) {
  std::ifstream in(path);
  std::vector<int32_t> ids;
  int32_t id;
  while (in >> id) ids.push_back(id);
  return ids;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Prints a measured value in a fixed format that the README's "Reproduced numbers" section quotes.
inline void report_measured(const std::string& what, const std::string& value) {
  std::printf("[ measured ] %s: %s\n", what.c_str(), value.c_str());
  std::fflush(stdout);
}

}  // namespace divprune::test

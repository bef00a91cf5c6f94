// Deterministic mutation fuzzing of the parsers of untrusted input (issue 14, item 10): the safetensors header,
// config.json, the llama2.c header, plan YAML and the run configuration. Small valid seeds (tests/fuzz_corpus/,
// plus a safetensors file and a llama2.c checkpoint written here) get a fixed-seed sequence of mutations (bit
// flips, byte insert/delete, truncation, numbers replaced by huge/negative/fractional/NaN values, duplicated
// lines or keys); every mutant must either parse or throw InputError. Any other exception fails the test; a crash
// or an out-of-bounds read fails it under the sanitizer phase of CI (ASan/UBSan). The same mutants every run, so
// a failure names the parser and the mutant number and reproduces. Mutants that once found a bug are kept in
// tests/fuzz_corpus/regressions/ (named <parser>-<what>.*) and replayed first.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "model/config.hpp"
#include "model/llama2c_checkpoint.hpp"
#include "model/safetensors.hpp"
#include "model/safetensors_writer.hpp"
#include "pipelines/run_config.hpp"
#include "tests/support/model_shapes.hpp"

namespace fs = std::filesystem;
using namespace divprune;

namespace {

constexpr int kMutantsPerParser = 300;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Each mutant goes to a new file, removed after parsing: truncating and rewriting one file makes ext4 flush it
// to disk every time (auto_da_alloc), 3 ms a mutant on a busy disk.
struct MutantFile {
  fs::path path;
  MutantFile(const fs::path& dir, const std::string& bytes) {
    static int counter = 0;
    path = dir / ("mutant-" + std::to_string(counter++));
    write_bytes(path, bytes);
  }
  ~MutantFile() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

// A fresh directory per test (removed at the end).
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("divprune-fuzz-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Replacement numbers: the values that break lenient parsers (overflow, sign, fractions, non-finite, zero).
const std::vector<std::string> kNumbers = {"0",  "-1",   "1",    "0.5",  "64.9", "-0", "1e308", "1e400", "-1e400",
                                           "nan", "NaN", ".nan", "inf",  ".inf", "-.inf", "2147483647", "2147483648",
                                           "-2147483649", "4294967297", "9223372036854775807", "9223372036854775808",
                                           "18446744073709551616", "99999999999999999999999999"};

// The fixed-seed mutator. rng() % n rather than std::uniform_int_distribution, whose output is not specified by
// the standard: the mutants must be the same with every standard library.
class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(rng_() % n); }

  // One to three stacked mutations of `input`.
  std::string mutate(std::string s) {
    const size_t count = 1 + below(3);
    for (size_t i = 0; i < count; ++i) s = mutate_once(std::move(s));
    return s;
  }

 private:
  std::string mutate_once(std::string s) {
    switch (below(8)) {
      case 0:  // bit flip
        if (!s.empty()) s[below(s.size())] ^= static_cast<char>(1u << below(8));
        return s;
      case 1: {  // byte set to an edge value
        static const char edge[] = {'\0', '\x7f', '\x80', '\xff', '"', '{', '[', ':', '\n', ' ', '-'};
        if (!s.empty()) s[below(s.size())] = edge[below(sizeof(edge))];
        return s;
      }
      case 2:  // byte insert
        s.insert(s.begin() + static_cast<std::ptrdiff_t>(below(s.size() + 1)), static_cast<char>(below(256)));
        return s;
      case 3:  // byte-range delete
        if (!s.empty()) {
          const size_t at = below(s.size());
          s.erase(at, 1 + below(std::min<size_t>(16, s.size() - at)));
        }
        return s;
      case 4:  // truncation
        s.resize(below(s.size() + 1));
        return s;
      case 5:
      case 6:
        return replace_number(std::move(s));
      default:
        return duplicate_line(std::move(s));
    }
  }

  // A run of digits (with its sign, dot and exponent) replaced by one of kNumbers.
  std::string replace_number(std::string s) {
    std::vector<size_t> starts;
    for (size_t i = 0; i < s.size(); ++i)
      if (std::isdigit(static_cast<unsigned char>(s[i])) && (i == 0 || !std::isdigit(static_cast<unsigned char>(s[i - 1]))))
        starts.push_back(i);
    if (starts.empty()) return s;
    size_t begin = starts[below(starts.size())], end = begin;
    while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) || s[end] == '.' || s[end] == 'e'))
      ++end;
    if (begin > 0 && s[begin - 1] == '-') --begin;
    return s.replace(begin, end - begin, kNumbers[below(kNumbers.size())]);
  }

  // A line repeated right after itself: a duplicated YAML key, or a duplicated JSON member (`"key": value,`).
  std::string duplicate_line(std::string s) {
    std::vector<size_t> starts{0};
    for (size_t i = 0; i + 1 < s.size(); ++i)
      if (s[i] == '\n') starts.push_back(i + 1);
    const size_t begin = starts[below(starts.size())];
    size_t end = s.find('\n', begin);
    end = end == std::string::npos ? s.size() : end + 1;
    std::string line = s.substr(begin, end - begin);
    if (!line.empty() && line.back() != '\n') line = "\n" + line;
    return s.insert(end, line);
  }

  std::mt19937_64 rng_;
};

// Runs `parse` on `input`; anything but success or InputError is a failure naming the parser and the mutant.
void expect_clean(const std::string& parser, const std::string& mutant_name, const std::string& input,
                  const std::function<void(const std::string&)>& parse) {
  try {
    parse(input);
  } catch (const InputError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << parser << " mutant " << mutant_name << " (" << input.size()
                  << " bytes) threw a non-InputError: " << e.what();
  } catch (...) {
    ADD_FAILURE() << parser << " mutant " << mutant_name << " threw a non-std exception";
  }
}

// The seed must parse; then kMutantsPerParser mutants, after any regression mutants of this parser.
void fuzz(const std::string& parser, const std::string& seed, uint64_t rng_seed,
          const std::function<void(const std::string&)>& parse) {
  ASSERT_NO_THROW(parse(seed)) << parser << ": the seed itself does not parse";
  const fs::path regressions = fs::path(DIVPRUNE_FUZZ_CORPUS) / "regressions";
  for (const auto& entry : fs::directory_iterator(regressions))
    if (entry.path().filename().string().rfind(parser + "-", 0) == 0)
      expect_clean(parser, entry.path().filename().string(), read_bytes(entry.path()), parse);
  Mutator mutator(rng_seed);
  for (int i = 0; i < kMutantsPerParser; ++i) expect_clean(parser, std::to_string(i), mutator.mutate(seed), parse);
}

std::string corpus(const std::string& name) {
  const fs::path path = fs::path(DIVPRUNE_FUZZ_CORPUS) / name;
  EXPECT_TRUE(fs::exists(path)) << path;
  return read_bytes(path);
}

ModelConfig tiny_config() { return test::llama_shape(6, 256, 688, 8, 8, 32000); }

}  // namespace

TEST(FuzzParsers, ConfigJson) {
  fuzz("config", corpus("config.json"), 1, [](const std::string& text) {
    const ModelConfig config = parse_hf_config_text(text, "config.json");
    validate_config(config);
  });
}

TEST(FuzzParsers, PlanYaml) {
  const ModelConfig config = tiny_config();
  fuzz("plan", corpus("plan.yaml"), 2, [&](const std::string& text) {
    const ValidatedPlan plan = parse_plan(text, config, "plan.yaml");
    (void)plan_to_yaml(plan.plan());
  });
}

TEST(FuzzParsers, RunConfigYaml) {
  TempDir dir("run");
  fuzz("run", corpus("run.yaml"), 3,
       [&](const std::string& text) { (void)parse_run_config(text, dir.path / "run.yaml", {}); });
}

// The safetensors file: the header (a JSON object behind an 8-byte length) is where a hostile file attacks, so
// half the mutants mutate the JSON text and get a correct length prefix (reaching the JSON checks), the other
// half mutate the raw bytes (length prefix included).
TEST(FuzzParsers, SafetensorsHeader) {
  TempDir dir("safetensors");
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {0.5f, -0.5f, 0.25f, 8};
  const std::vector<SafetensorsTensor> tensors = {{"model.a.weight", {2, 3}, a}, {"model.b.weight", {4}, b}};
  write_safetensors_file(dir.path / "seed.safetensors", tensors, DType::F16, {{"format", "pt"}});
  const std::string seed = read_bytes(dir.path / "seed.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, seed.data(), 8);
  ASSERT_LE(8 + header_len, seed.size());
  const std::string header = seed.substr(8, header_len), data = seed.substr(8 + header_len);

  auto parse = [&](const std::string& bytes) {
    const MutantFile file(dir.path, bytes);
    SafetensorsFile st(file.path);
    for (const std::string& name : st.names()) {
      const TensorMeta meta = st.meta(name);
      if (meta.shape.empty() || meta.shape.size() > 2) continue;
      const int64_t rows = meta.shape.size() == 2 ? meta.shape[0] : 1, cols = meta.shape.back();
      if (rows <= 0 || cols <= 0 || rows > 4096 || cols > 4096 || rows * cols > (1 << 16)) continue;
      std::vector<float> out(static_cast<size_t>(rows * cols));
      st.read(name, Range{0, rows}, Range{0, cols}, out);
    }
  };
  fuzz("safetensors", seed, 4, parse);
  Mutator mutator(5);
  for (int i = 0; i < kMutantsPerParser; ++i) {
    const std::string json = mutator.mutate(header);
    std::string bytes(8, '\0');
    const uint64_t len = json.size();
    std::memcpy(bytes.data(), &len, 8);
    expect_clean("safetensors-json", std::to_string(i), bytes + json + data, parse);
  }
}

// The llama2.c checkpoint: a 7 x int32 header and float32 weights. Its fields are binary, so besides the byte
// mutations each header field in turn gets edge values (zero, negative, huge, off by one).
TEST(FuzzParsers, Llama2cHeader) {
  TempDir dir("llama2c");
  const int32_t dim = 8, hidden = 16, layers = 2, heads = 2, kv_heads = 2, vocab = 16, seq = 8;
  const int32_t header[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  const int64_t kv = kv_heads * (dim / heads);
  const int64_t floats = int64_t{vocab} * dim + layers * (dim + dim * dim + 2 * kv * dim + dim * dim + dim + 3 * dim * hidden) +
                         dim + int64_t{seq} * (dim / heads);
  std::string seed(sizeof(header), '\0');
  std::memcpy(seed.data(), header, sizeof(header));
  for (int64_t i = 0; i < floats; ++i) {
    const float v = 0.01f * static_cast<float>(i % 97) - 0.4f;
    seed.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  auto parse = [&](const std::string& bytes) {
    const MutantFile file(dir.path, bytes);
    const auto checkpoint = open_llama2c_checkpoint(file.path);
    const ModelConfig& config = checkpoint->config();
    validate_config(config);
    if (config.hidden_size > 0 && config.vocab_size > 0 && config.hidden_size * config.vocab_size <= (1 << 16)) {
      std::vector<float> out(static_cast<size_t>(config.hidden_size));
      checkpoint->read("model.embed_tokens.weight", Range{0, 1}, Range{0, config.hidden_size}, out);
    }
  };
  fuzz("llama2c", seed, 6, parse);
  const int32_t edges[] = {0, -1, 1, 3, 7, -7, 1 << 20, INT32_MAX, INT32_MIN, -16, 17};
  for (int field = 0; field < 7; ++field)
    for (int32_t edge : edges) {
      std::string bytes = seed;
      std::memcpy(bytes.data() + field * 4, &edge, 4);
      expect_clean("llama2c", "field" + std::to_string(field) + "=" + std::to_string(edge), bytes, parse);
    }
}

// The CPU forward against independent references (DESIGN: "a CPU result is the reference"):
//  - tiny-llama2-mha/reference.h5: logits, next-token NLL and 24 greedy ids from PyTorch + transformers in
//    float64, and SentencePiece ids of five strings;
//  - stories260K.bin (llama2.c, GQA, shared classifier): 128 greedy ids from BOS;
//  - config.json in the classic layout (top-level rope_theta/torch_dtype) and the newer one give one model.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "archive/h5.hpp"
#include "core/errors.hpp"
#include "metrics/corpus.hpp"
#include "model/config.hpp"
#include "model/generate.hpp"
#include "model/tokenizer.hpp"
#include "tests/model/test_util.hpp"

namespace divprune::test {
namespace {

constexpr const char* kMha = "tiny-llama2-mha";
constexpr const char* kMhaReference = "tiny-llama2-mha/reference.h5";
constexpr const char* kStories = "stories260K.bin";
constexpr const char* kTokenizer = "llama2-tokenizer.model";

// log sum_v exp(row_v) in double.
double log_sum_exp(const float* row, int64_t n) {
  double max = row[0];
  for (int64_t v = 1; v < n; ++v) max = std::max(max, static_cast<double>(row[v]));
  double sum = 0.0;
  for (int64_t v = 0; v < n; ++v) sum += std::exp(static_cast<double>(row[v]) - max);
  return max + std::log(sum);
}

class MhaReference : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSETS_OR_SKIP(kMhaReference);
    model_ = load_model(assets_dir() / kMha);
    reference_ = std::make_unique<H5File>(assets_dir() / kMhaReference, H5Mode::Read);
  }
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<H5File> reference_;
};

TEST_F(MhaReference, ConfigMatchesTheCheckpoint) {
  const ModelConfig& c = model_->checkpoint->config();
  EXPECT_EQ(model_->checkpoint->format(), "safetensors");
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 176);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_EQ(c.dtype, DType::F16);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST_F(MhaReference, LogitsMatchTransformers) {
  Shape ids_dims, logits_dims;
  const std::vector<int32_t> ids = reference_->read_int32("input_ids", &ids_dims);
  const std::vector<float> expected = reference_->read_float("logits", &logits_dims);
  ASSERT_EQ(ids_dims, (Shape{2, 32}));
  ASSERT_EQ(logits_dims, (Shape{2, 32, 32000}));
  const int64_t batch = ids_dims[0], seq = ids_dims[1], vocab = logits_dims[2];
  double max_diff = 0.0, max_ref = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t> row(ids.begin() + b * seq, ids.begin() + (b + 1) * seq);
    const std::vector<float> got = model_->logits(row);
    ASSERT_EQ(static_cast<int64_t>(got.size()), seq * vocab);
    for (int64_t i = 0; i < seq * vocab; ++i) {
      const double ref = expected[static_cast<size_t>(b * seq * vocab + i)];
      ASSERT_TRUE(std::isfinite(got[static_cast<size_t>(i)])) << "row " << b << " element " << i;
      max_diff = std::max(max_diff, std::abs(got[static_cast<size_t>(i)] - ref));
      max_ref = std::max(max_ref, std::abs(ref));
    }
  }
  ASSERT_GT(max_ref, 0.0);
  const double relative = max_diff / max_ref;
  report_measured("tiny-llama2-mha logits max|d|/max|ref|", fmt::format("{:.3g} (max|ref| {:.4g})", relative, max_ref));
  EXPECT_LE(relative, 1e-4);
}

TEST_F(MhaReference, NextTokenNllMatchesTransformers) {
  Shape ids_dims, nll_dims;
  const std::vector<int32_t> ids = reference_->read_int32("input_ids", &ids_dims);
  const std::vector<double> expected = reference_->read_double("nll", &nll_dims);
  ASSERT_EQ(nll_dims, (Shape{2, 31}));
  const int64_t batch = ids_dims[0], seq = ids_dims[1];
  const int64_t vocab = model_->checkpoint->config().vocab_size;
  double max_diff = 0.0, sum = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    const std::vector<int32_t> row(ids.begin() + b * seq, ids.begin() + (b + 1) * seq);
    const std::vector<float> logits = model_->logits(row);
    for (int64_t i = 0; i + 1 < seq; ++i) {
      const float* r = logits.data() + i * vocab;
      const double nll = log_sum_exp(r, vocab) - r[row[static_cast<size_t>(i + 1)]];
      const double ref = expected[static_cast<size_t>(b * (seq - 1) + i)];
      EXPECT_NEAR(nll, ref, 1e-4) << "row " << b << " position " << i;
      max_diff = std::max(max_diff, std::abs(nll - ref));
      sum += nll;
    }
  }
  report_measured("tiny-llama2-mha nll max|d|", fmt::format("{:.3g} (mean nll {:.6f})", max_diff,
                                                           sum / static_cast<double>(batch * (seq - 1))));
}

TEST_F(MhaReference, GreedyIdsMatchTransformers) {
  const std::vector<int32_t> prompt = reference_->read_int32("greedy_prompt");
  const std::vector<int32_t> expected = reference_->read_int32("greedy_ids");
  ASSERT_EQ(expected.size(), 24u);
  const std::vector<int32_t> got = greedy_generate(*model_->model, prompt, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(got, expected);
}

TEST_F(MhaReference, IncrementalDecodingMatchesTheFullForward) {
  // Position-by-position forward with the KV cache gives the same logits as one teacher-forced call.
  const std::vector<int32_t> ids = reference_->read_int32("input_ids");
  const std::vector<int32_t> row(ids.begin(), ids.begin() + 32);
  const std::vector<float> full = model_->logits(row);
  const int64_t vocab = model_->checkpoint->config().vocab_size;
  KvCache cache = model_->model->make_cache(32);
  std::vector<float> step(static_cast<size_t>(vocab));
  double max_diff = 0.0;
  for (int64_t pos = 0; pos < 32; ++pos) {
    Tensor out = model_->model->forward(std::span<const int32_t>(row.data() + pos, 1), pos, cache);
    model_->backend.download(out, step);
    for (int64_t v = 0; v < vocab; ++v)
      max_diff = std::max(max_diff, static_cast<double>(std::abs(step[static_cast<size_t>(v)] -
                                                                 full[static_cast<size_t>(pos * vocab + v)])));
  }
  EXPECT_LE(max_diff, 1e-4);
}

TEST_F(MhaReference, LogitsOfTheLastRowsMatchTheFullForward) {
  // forward(..., logit_rows) skips the vocabulary projection of the first n - logit_rows positions: the rows it
  // returns are the full forward's last rows, and the KV cache it leaves is the same (a decode step after it
  // gives the full forward's next logits).
  const std::vector<int32_t> ids = reference_->read_int32("input_ids");
  const std::vector<int32_t> row(ids.begin(), ids.begin() + 32);
  const std::vector<float> full = model_->logits(row);
  const int64_t vocab = model_->checkpoint->config().vocab_size;
  for (int64_t rows : {0, 1, 7, 31}) {
    KvCache cache = model_->model->make_cache(32);
    Tensor out = model_->model->forward(std::span<const int32_t>(row.data(), 31), 0, cache, rows);
    ASSERT_EQ(out.dim(0), rows);
    ASSERT_EQ(out.dim(1), vocab);
    std::vector<float> got(static_cast<size_t>(rows * vocab));
    model_->backend.download(out, got);
    double max_diff = 0.0;
    for (int64_t i = 0; i < rows * vocab; ++i)
      max_diff = std::max(max_diff, static_cast<double>(std::abs(
                                        got[static_cast<size_t>(i)] - full[static_cast<size_t>((31 - rows) * vocab + i)])));
    EXPECT_LE(max_diff, 1e-4) << rows << " rows";
    std::vector<float> next(static_cast<size_t>(vocab));
    model_->backend.download(model_->model->forward(std::span<const int32_t>(row.data() + 31, 1), 31, cache), next);
    double next_diff = 0.0;
    for (int64_t v = 0; v < vocab; ++v)
      next_diff = std::max(next_diff, static_cast<double>(std::abs(next[static_cast<size_t>(v)] -
                                                                   full[static_cast<size_t>(31 * vocab + v)])));
    EXPECT_LE(next_diff, 1e-4) << rows << " rows, then one decode step";
  }
}

TEST(Tokenizer, MatchesSentencePieceReference) {
  ASSETS_OR_SKIP(kMhaReference);
  ASSETS_OR_SKIP(kTokenizer);
  Tokenizer tokenizer(assets_dir() / kTokenizer);
  EXPECT_EQ(tokenizer.vocab_size(), 32000);
  EXPECT_EQ(tokenizer.bos_id(), 1);
  H5File reference(assets_dir() / kMhaReference, H5Mode::Read);
  int checked = 0;
  for (int i = 0; reference.exists(fmt::format("tokenizer/text_{}", i)); ++i) {
    const std::string text = reference.read_string(fmt::format("tokenizer/text_{}", i));
    const std::vector<int32_t> expected = reference.read_int32(fmt::format("tokenizer/ids_{}", i));
    EXPECT_EQ(tokenizer.encode(text), expected) << "text_" << i << ": \"" << text << "\"";
    ++checked;
  }
  EXPECT_EQ(checked, 5);
  EXPECT_EQ(tokenizer.decode({15043, 3186}), "Hello world");
}

TEST(Tokenizer, CorpusFollowsTheProtocol) {
  // Blank lines skipped, each line stripped and encoded without BOS, newline piece 13 after each line.
  ASSETS_OR_SKIP(kTokenizer);
  Tokenizer tokenizer(assets_dir() / kTokenizer);
  TempDir tmp;
  write_file(tmp / "text.txt", " = Hello world = \n\n   \t\nleading space  \r\nlast line without newline");
  const std::vector<int32_t> stream = tokenize_corpus(tokenizer, tmp / "text.txt");
  std::vector<int32_t> expected;
  for (const char* line : {"= Hello world =", "leading space", "last line without newline"}) {
    const auto ids = tokenizer.encode(line);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(kNewlineToken);
  }
  EXPECT_EQ(stream, expected);
  write_file(tmp / "blank.txt", "\n  \n\t\n");
  EXPECT_THROW(tokenize_corpus(tokenizer, tmp / "blank.txt"), InputError);
  EXPECT_THROW(tokenize_corpus(tokenizer, tmp / "missing.txt"), InputError);
}

TEST(Stories260K, GreedyFromBosMatchesLlama2c) {
  ASSETS_OR_SKIP(kStories);
  ASSETS_OR_SKIP("stories260K.greedy128.txt");
  auto model = load_model(assets_dir() / kStories);
  const ModelConfig& c = model->checkpoint->config();
  EXPECT_EQ(model->checkpoint->format(), "llama2.c");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_heads, 8);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_TRUE(c.tie_word_embeddings);
  const std::vector<int32_t> expected = read_ids(assets_dir() / "stories260K.greedy128.txt");
  ASSERT_EQ(expected.size(), 128u);
  const std::vector<int32_t> got = greedy_generate(*model->model, std::vector<int32_t>{1}, 128);
  EXPECT_EQ(got, expected);
  const auto first_diff = std::mismatch(got.begin(), got.end(), expected.begin()).first - got.begin();
  report_measured("stories260K greedy ids matching llama2.c", fmt::format("{} of {}", first_diff, expected.size()));
}

// config.json layouts: transformers >= 4.56 writes rope_parameters.rope_theta and dtype; Llama-2's own
// config (and older transformers) has top-level rope_theta and torch_dtype, or omits them.
TEST(ConfigLayouts, ClassicAndNewLayoutsParseAlike) {
  const std::string base = R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
      "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 128, "rms_norm_eps": 1e-06)";
  const ModelConfig classic = parse_hf_config_text(base + R"(, "rope_theta": 500000.0, "torch_dtype": "bfloat16"})", "classic");
  const ModelConfig newer = parse_hf_config_text(
      base + R"(, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}, "dtype": "bfloat16"})", "newer");
  const ModelConfig omitted = parse_hf_config_text(base + "}", "omitted");
  EXPECT_FLOAT_EQ(classic.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(newer.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(omitted.rope_theta, 10000.0f);
  EXPECT_EQ(classic.dtype, DType::BF16);
  EXPECT_EQ(newer.dtype, DType::BF16);
  EXPECT_EQ(classic.num_kv_heads, 4);  // defaults to num_attention_heads (MHA)
  EXPECT_EQ(classic.head_dim, 8);      // defaults to hidden_size / heads
  EXPECT_FLOAT_EQ(classic.rms_norm_eps, 1e-6f);
}

TEST(ConfigLayouts, ClassicConfigGivesIdenticalLogits) {
  ASSETS_OR_SKIP(kMhaReference);
  TempDir tmp;
  const fs::path classic_dir = copy_checkpoint_dir(assets_dir() / kMha, tmp / "classic");
  auto config = nlohmann::ordered_json::parse(read_file(classic_dir / "config.json"));
  ASSERT_TRUE(config.contains("rope_parameters"));
  ASSERT_TRUE(config.contains("dtype"));
  const double theta = config["rope_parameters"]["rope_theta"].get<double>();
  config.erase("rope_parameters");
  config["rope_theta"] = theta;
  config["torch_dtype"] = config["dtype"];
  config.erase("dtype");
  write_file(classic_dir / "config.json", config.dump(2));

  auto original = load_model(assets_dir() / kMha);
  auto classic = load_model(classic_dir);
  const ModelConfig& a = original->checkpoint->config();
  const ModelConfig& b = classic->checkpoint->config();
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.parameter_count(), b.parameter_count());

  const std::vector<int32_t> ids = H5File(assets_dir() / kMhaReference, H5Mode::Read).read_int32("input_ids");
  const std::vector<int32_t> row(ids.begin(), ids.begin() + 32);
  const std::vector<float> la = original->logits(row);
  const std::vector<float> lb = classic->logits(row);
  ASSERT_EQ(la.size(), lb.size());
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0) << "logits differ";

  // And a different theta in the classic layout is really read (not silently defaulted).
  config["rope_theta"] = 500000.0;
  write_file(classic_dir / "config.json", config.dump(2));
  auto rescaled = load_model(classic_dir);
  EXPECT_FLOAT_EQ(rescaled->checkpoint->config().rope_theta, 500000.0f);
  const std::vector<float> lc = rescaled->logits(row);
  EXPECT_NE(std::memcmp(la.data(), lc.data(), la.size() * sizeof(float)), 0) << "rope_theta had no effect";
}

}  // namespace
}  // namespace divprune::test

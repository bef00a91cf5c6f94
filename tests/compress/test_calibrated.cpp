// Calibrated compression (issue 16): calibration windows and statistics (compress/calibration.hpp), plan
// syntax / validation / features of the calibrated operators (compress/plan.hpp), and the operators applied to a
// real model. The operators' numerics are checked against numpy in test_calibrated_reference.py; tp = 2 / 4 in
// test_tp.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <unistd.h>

#include "compress/apply.hpp"
#include "compress/calibrated_operators.hpp"
#include "compress/calibration.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "tests/support/assets.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

constexpr const char* kModel = "tiny-llama2-mha/model.safetensors";
constexpr const char* kTokenizer = "llama2-tokenizer.model";

ModelConfig small_config() {  // the shapes of tiny-llama2-mha: C 64, F 176, q 64
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 4;
  c.head_dim = 16;
  c.max_seq_len = 256;
  c.source = "small/config.json";
  return c;
}

std::string error_of(const std::string& yaml) {
  try {
    parse_plan(yaml, small_config(), "plan.yaml");
  } catch (const InputError& e) {
    return e.what();
  }
  return "accepted";
}

TEST(CompressCalibrated, BadParametersAreRejectedNamingTheKey) {
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], quant: {method: gptq, bits: 5}}\n"),
              HasSubstr("plan.yaml: components[0].quant.bits (line 2): bits 5 is not one of 2, 3, 4, 8"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [down], quant: {method: rtn, group_size: 64}}\n"),
              HasSubstr("components[0].quant.group_size (line 2): group_size 64 does not divide the 176 input columns "
                        "of down"));
  // The default group of 128 does not divide q's 64 columns either.
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], quant: gptq}\n"),
              HasSubstr("group_size 128 does not divide the 64 input columns of q"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], prune: {method: wanda, pattern: \"4:4\"}}\n"),
              HasSubstr("components[0].prune.pattern (line 2): pattern 4:4 must keep N of every M entries with 1 <= N < M"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], prune: {method: sparsegpt, pattern: \"5:3\"}}\n"),
              HasSubstr("pattern 5:3 must keep N of every M"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], prune: {method: magnitude, pattern: \"2:4\"}}\n"),
              HasSubstr("components[0].prune.pattern (line 2): an N:M pattern applies to wanda and sparsegpt only"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], prune: {method: wanda, pattern: \"2-4\"}}\n"),
              HasSubstr("expected \"N:M\""));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], quant: {method: int8, bits: 4}}\n"),
              HasSubstr("apply to gptq and rtn only, not to int8"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], quant: {method: rtn, group_size: 16, act_order: true}}\n"),
              HasSubstr("quant.act_order (line 2): act_order applies to gptq only"));
  EXPECT_THAT(error_of("components:\n  - {layers: all, names: [q], prune: {method: lasso, sparsity: 0.5}}\n"),
              HasSubstr("(known: magnitude, magnitude_row, 2:4, heads, channels) or a calibrated one (wanda, sparsegpt)"));
  // Plans built in code are checked the same way.
  CompressionPlan p = CompressionPlan::identity(2);
  p.at(1, Component::O).quant = QuantMethod::Gptq;
  p.at(1, Component::O).quant_params.bits = 5;
  EXPECT_THROW(validate_plan(p, small_config(), "code"), InputError);
}

TEST(CompressCalibrated, CanonicalYamlAndFeaturesRoundTrip) {
  const ModelConfig config = small_config();
  const char* yaml = R"(components:
  - {layers: all, names: [q, k, v], prune: {method: wanda, sparsity: 0.5}}
  - {layers: [0], names: [gate, up], prune: {method: sparsegpt, pattern: "2:4"}, quant: {method: gptq, bits: 4, group_size: 16}}
  - {layers: [1], names: [down], prune: {method: wanda, pattern: "4:8"}, quant: {method: rtn, bits: 3, group_size: -1, sym: false}}
  - {layers: [1], names: [o], quant: {method: gptq, bits: 2, group_size: 32, act_order: true}}
)";
  const CompressionPlan p = parse_plan(yaml, config, "plan.yaml").plan();
  EXPECT_EQ(p.at(0, Component::Gate).prune->sparsity, 0.5);
  EXPECT_EQ(p.at(0, Component::Gate).prune->pattern_n, 2);
  EXPECT_EQ(p.at(0, Component::Gate).quant_params, (QuantParams{4, 16, true, false}));
  EXPECT_EQ(p.at(1, Component::Down).quant_params, (QuantParams{3, -1, false, false}));
  EXPECT_TRUE(p.needs_calibration());
  const std::string canon = plan_to_yaml(p);
  EXPECT_THAT(canon, HasSubstr("prune: {method: sparsegpt, pattern: \"2:4\"}, quant: {method: gptq, bits: 4, "
                               "group_size: 16, sym: true, act_order: false}"));
  EXPECT_EQ(parse_plan(canon, config, "canon.yaml").plan(), p);
  // Features: the original layout is unchanged, the calibrated tail follows and decodes back.
  EXPECT_EQ(plan_feature_count(config), 2 * 50);
  EXPECT_EQ(plan_feature_count(config, true), 2 * 50 + 2 * 7 * 10);
  const std::vector<float> f = plan_features(p, config, true);
  const std::vector<std::string> names = plan_feature_names(config, true);
  ASSERT_EQ(names.size(), f.size());
  EXPECT_EQ(names[100 + (1 * 7 + 6) * 10 + 6], "layer1.down.bits");
  EXPECT_EQ(f[100 + (1 * 7 + 6) * 10 + 6], 3.0f);
  EXPECT_EQ(f[100 + (1 * 7 + 6) * 10 + 0], 1.0f);  // wanda
  EXPECT_EQ(f[50 + 6 * 7 + 0], 0.5f);               // the sparsity in the original block
  EXPECT_EQ(plan_from_features(f, config, true), canonical_plan(p));
  // Sizes: 2:4 / 4:8 prune half of every row; gptq-4 stores half a byte per kept entry.
  EXPECT_EQ(pruned_entries(*p.at(0, Component::Gate).prune, Component::Gate, config), 176 * 64 / 2);
  EXPECT_EQ(pruned_entries(*p.at(0, Component::Q).prune, Component::Q, config), 64 * 32);
}

std::filesystem::path temp_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / fmt::format("divprune-calib-{}-{}", ::getpid(), name);
  std::ofstream(path) << text;
  return path;
}

TEST(CompressCalibrated, CalibrationWindowsAreSeededAndTooShortTextsRejected) {
  ASSETS_OR_SKIP(kTokenizer);
  const Tokenizer tokenizer(::divprune::test::assets_dir() / kTokenizer);
  std::string text;
  for (int i = 0; i < 40; ++i) text += fmt::format("The quick brown fox {} jumps over the lazy dog number {}. ", i, i * 7);
  const auto file = temp_file("text.txt", text);
  const std::vector<int32_t> all = tokenizer.encode(text);
  CalibrationSpec spec{file, 5, 32, 7};
  const auto a = calibration_sequences(tokenizer, spec);
  ASSERT_EQ(a.size(), 5u);
  for (const auto& s : a) {
    ASSERT_EQ(s.size(), 32u);
    EXPECT_NE(std::search(all.begin(), all.end(), s.begin(), s.end()), all.end()) << "a window of the text";
  }
  EXPECT_EQ(calibration_sequences(tokenizer, spec), a);
  spec.seed = 8;
  EXPECT_NE(calibration_sequences(tokenizer, spec), a);

  const auto short_file = temp_file("short.txt", "Too short.");
  try {
    calibration_sequences(tokenizer, CalibrationSpec{short_file, 4, 64, 0});
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(exit_code_for(e), 2);
    EXPECT_THAT(e.what(), HasSubstr(short_file.string() + ": the calibration text holds"));
    EXPECT_THAT(e.what(), HasSubstr("fewer than one sequence of 64"));
  }
  std::filesystem::remove(file);
  std::filesystem::remove(short_file);
}

struct Tiny {
  std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(::divprune::test::assets_dir() / "tiny-llama2-mha");
  const ModelConfig& config() const { return checkpoint->config(); }
  HostWeights pristine = load_host_weights(*checkpoint, make_shard_layout(config(), {0, 1}));
  std::unique_ptr<Backend> backend = make_backend(BackendKind::Cpu);
  SoloCommunicator comm;
  LlamaModel model{config(), pristine.layout, *backend, comm, upload_weights(*backend, pristine)};
};

std::vector<std::vector<int32_t>> synthetic_sequences(int count, int length) {
  std::vector<std::vector<int32_t>> out(static_cast<size_t>(count));
  for (int s = 0; s < count; ++s)
    for (int t = 0; t < length; ++t) out[static_cast<size_t>(s)].push_back((s * 7919 + t * 104729 + 13) % 32000);
  return out;
}

TEST(CompressCalibrated, StatisticsAreTheGramMatricesOfTheProjectionInputs) {
  ASSETS_OR_SKIP(kModel);
  Tiny tiny;
  const auto seqs = synthetic_sequences(3, 24);
  const CalibrationStats stats = collect_calibration(tiny.model, seqs);
  const ModelConfig& c = tiny.config();
  ASSERT_EQ(stats.layers.size(), static_cast<size_t>(c.num_layers));
  EXPECT_EQ(stats.for_component(1, Component::Down).dim, c.intermediate_size);
  EXPECT_EQ(stats.for_component(0, Component::O).dim, c.num_heads * c.head_dim);
  for (const auto& layer : stats.layers)
    for (const InputStats& s : layer) {
      EXPECT_EQ(s.tokens, 3 * 24);
      for (int64_t i = 0; i < s.dim; ++i) {
        EXPECT_GT(s.sumsq(i), 0.0);
        for (int64_t j = 0; j < i; ++j) ASSERT_EQ(s.gram[static_cast<size_t>(i * s.dim + j)], s.gram[static_cast<size_t>(j * s.dim + i)]);
      }
    }
  // Layer 0's q/k/v input is rmsnorm(embedding): recomputed here in double from the checkpoint.
  const int64_t C = c.hidden_size;
  std::vector<double> gram(static_cast<size_t>(C * C), 0.0), x(static_cast<size_t>(C));
  const auto& norm = tiny.pristine.layers[0].attn_norm;
  for (const auto& seq : seqs)
    for (int32_t id : seq) {
      double ms = 0.0;
      for (int64_t j = 0; j < C; ++j) {
        x[static_cast<size_t>(j)] = tiny.pristine.embed.data[static_cast<size_t>(id * C + j)];
        ms += x[static_cast<size_t>(j)] * x[static_cast<size_t>(j)];
      }
      const double r = 1.0 / std::sqrt(ms / static_cast<double>(C) + c.rms_norm_eps);
      for (int64_t j = 0; j < C; ++j) x[static_cast<size_t>(j)] *= r * norm[static_cast<size_t>(j)];
      for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j) gram[static_cast<size_t>(i * C + j)] += x[static_cast<size_t>(i)] * x[static_cast<size_t>(j)];
    }
  const InputStats& got = stats.for_component(0, Component::K);
  double scale = 0.0, diff = 0.0;
  for (size_t i = 0; i < gram.size(); ++i) {
    scale = std::max(scale, std::abs(gram[i]));
    diff = std::max(diff, std::abs(gram[i] - got.gram[i]));
  }
  EXPECT_LE(diff / scale, 1e-5);
}

TEST(CompressCalibrated, AppliedPlansPruneAndQuantizeAsPlanned) {
  ASSETS_OR_SKIP(kModel);
  Tiny tiny;
  const CalibrationStats stats = collect_calibration(tiny.model, synthetic_sequences(2, 32));
  const ValidatedPlan plan = parse_plan(R"(components:
  - {layers: all, names: [q, k], prune: {method: wanda, sparsity: 0.5}}
  - {layers: all, names: [gate], prune: {method: sparsegpt, pattern: "2:4"}}
  - {layers: [0], names: [down], prune: {method: sparsegpt, sparsity: 0.25}, quant: {method: gptq, bits: 4, group_size: 16}}
  - {layers: [1], names: [o], quant: {method: rtn, bits: 3, group_size: 32}}
)", tiny.config(), "plan.yaml");
  auto zeros = [](const HostMatrix& m) { return std::count(m.data.begin(), m.data.end(), 0.0f); };
  for (int64_t l = 0; l < 2; ++l)
    for (Component c : {Component::Q, Component::K, Component::Gate}) {
      const HostMatrix m = compress_linear(plan, tiny.config(), tiny.pristine, l, c, tiny.comm, &stats);
      EXPECT_EQ(zeros(m), pruned_entries(*plan.plan().at(l, c).prune, c, tiny.config())) << l << component_name(c);
    }
  // gptq after sparsegpt keeps the prune's zeros and uses at most 16 levels per group of 16 columns.
  const HostMatrix down = compress_linear(plan, tiny.config(), tiny.pristine, 0, Component::Down, tiny.comm, &stats);
  EXPECT_GE(zeros(down), 64 * 44);
  for (int64_t i = 0; i < down.rows; ++i)
    for (int64_t g = 0; g < down.cols; g += 16) {
      std::vector<float> v(down.data.begin() + i * down.cols + g, down.data.begin() + i * down.cols + g + 16);
      std::sort(v.begin(), v.end());
      EXPECT_LE(std::unique(v.begin(), v.end()) - v.begin(), 16);
    }
  // rtn-3 equals the operator on the pristine matrix; 8 levels per group.
  HostMatrix o = tiny.pristine.layers[1].linear.o;
  rtn_rows(o, {3, 32, true});
  EXPECT_EQ(compress_linear(plan, tiny.config(), tiny.pristine, 1, Component::O, tiny.comm, &stats).data, o.data);
  // The whole plan on the model: the logits change but stay finite.
  apply_plan(plan, tiny.pristine, tiny.model, &stats);
  KvCache cache = tiny.model.make_cache(8);
  const std::vector<int32_t> ids = {1, 450, 4996, 17354, 1701, 29916, 432, 17204};
  Tensor logits = tiny.model.forward(ids, 0, cache);
  std::vector<float> host(static_cast<size_t>(logits.numel()));
  tiny.backend->download(logits, host);
  for (float v : host) ASSERT_TRUE(std::isfinite(v));
}

// Sequential mode: a layer before the first compressed one sees the base model's inputs (same result as cached);
// a layer after a compressed one is calibrated on the compressed outputs (a different result).
TEST(CompressCalibrated, SequentialModeCalibratesOnTheCompressedLayersBefore) {
  ASSETS_OR_SKIP(kModel);
  Tiny tiny;
  const auto seqs = synthetic_sequences(2, 24);
  const CalibrationStats cached = collect_calibration(tiny.model, seqs);
  const ValidatedPlan plan = parse_plan(R"(components:
  - {layers: all, names: [q, o, gate, down], prune: {method: sparsegpt, sparsity: 0.5}}
  - {layers: all, names: [k, up], quant: {method: gptq, bits: 3, group_size: 16}}
)", tiny.config(), "plan.yaml");
  apply_plan_sequential(plan, tiny.pristine, tiny.model, seqs);
  auto download = [&](int64_t l, Component c) {
    const Tensor& t = tiny.model.weights().layers[static_cast<size_t>(l)].linear[c];
    std::vector<float> host(static_cast<size_t>(t.numel()));
    tiny.backend->download(t, host);
    return host;
  };
  for (Component c : {Component::Q, Component::O, Component::Gate, Component::Down, Component::K, Component::Up}) {
    EXPECT_EQ(download(0, c), compress_linear(plan, tiny.config(), tiny.pristine, 0, c, tiny.comm, &cached).data)
        << "layer 0 " << component_name(c);
    EXPECT_NE(download(1, c), compress_linear(plan, tiny.config(), tiny.pristine, 1, c, tiny.comm, &cached).data)
        << "layer 1 " << component_name(c);
  }
  // Untouched components stay pristine.
  EXPECT_EQ(download(1, Component::V), tiny.pristine.layers[1].linear.v.data);
}

}  // namespace
}  // namespace divprune

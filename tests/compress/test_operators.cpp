// Compression operators at tp = 1 on the embedded synthetic model (GQA: 4 query heads, 2 KV heads; float16
// weights, so |w| ties are common and the tie-breaking rules matter): exact zero counts against independent
// reference implementations, the 2:4 pattern, the int8 error bound, layer removal, head pruning, re-applying.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "compress/apply.hpp"
#include "compress/operators.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/synthetic.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

class CompressOperators : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("divprune-compress-ops-" + std::to_string(::getpid())));
    write_synthetic_checkpoint(*dir_, SyntheticSpec{});
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    ckpt_ = open_checkpoint(*dir_);
    config_ = ckpt_->config();
    pristine_ = load_host_weights(*ckpt_, make_shard_layout(config_, {0, 1}));
    backend_ = make_backend(BackendKind::Cpu);
  }

  std::unique_ptr<LlamaModel> make_model(const HostWeights& weights, const ModelConfig& config) {
    return std::make_unique<LlamaModel>(config, weights.layout, *backend_, comm_, upload_weights(*backend_, weights));
  }
  std::unique_ptr<LlamaModel> make_model() { return make_model(pristine_, config_); }

  std::vector<float> logits(LlamaModel& model) {
    const std::vector<int32_t> ids = {1, 17, 300, 42, 42, 511, 7, 99, 250, 3, 64, 128};
    KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
    Tensor out = model.forward(ids, 0, cache);
    std::vector<float> host(static_cast<size_t>(out.numel()));
    backend_->download(out, host);
    return host;
  }

  std::vector<float> download(const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend_->download(t, host);
    return host;
  }

  HostMatrix compressed(const std::string& yaml, int64_t layer, Component c) {
    return compress_linear(parse_plan(yaml, config_, "test.yaml"), config_, pristine_, layer, c, comm_);
  }
  const HostMatrix& original(int64_t layer, Component c) const {
    return pristine_.layers[static_cast<size_t>(layer)].linear[c];
  }

  static std::filesystem::path* dir_;
  std::unique_ptr<Checkpoint> ckpt_;
  ModelConfig config_;
  HostWeights pristine_;
  std::unique_ptr<Backend> backend_;
  SoloCommunicator comm_;
};

std::filesystem::path* CompressOperators::dir_ = nullptr;

std::string prune_yaml(const std::string& names, const std::string& method, double sparsity) {
  return fmt::format("components:\n  - {{layers: all, names: [{}], prune: {{method: \"{}\", sparsity: {}}}}}\n", names,
                     method, sparsity);
}

int64_t count_zeros(std::span<const float> v) { return std::count(v.begin(), v.end(), 0.0f); }

// Reference: zero the k entries of `idx` (positions into data) of smallest |w|, ties to the lower position.
void zero_smallest(std::vector<float>& data, std::vector<int64_t> idx, int64_t k) {
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return std::abs(data[a]) < std::abs(data[b]); });
  for (int64_t i = 0; i < k; ++i) data[static_cast<size_t>(idx[static_cast<size_t>(i)])] = 0.0f;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
  return d;
}

TEST_F(CompressOperators, MagnitudeZeroesExactlyRoundSnSmallestEntries) {
  int boundary_ties = 0;  // cases where equal |w| straddle the threshold: the flat-index tie-break decides
  for (double s : {0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.999}) {
    for (Component c : kAllComponents) {
      const HostMatrix& w = original(1, c);
      const int64_t n = w.rows * w.cols;
      const int64_t k = static_cast<int64_t>(std::nearbyint(s * static_cast<double>(n)));
      std::vector<float> expected = w.data;
      std::vector<int64_t> idx(static_cast<size_t>(n));
      std::iota(idx.begin(), idx.end(), 0);
      zero_smallest(expected, idx, k);
      if (k > 0 && k < n) {
        std::vector<float> mags(w.data.size());
        std::transform(w.data.begin(), w.data.end(), mags.begin(), [](float x) { return std::abs(x); });
        std::sort(mags.begin(), mags.end());
        boundary_ties += mags[k - 1] == mags[k];
      }
      const HostMatrix got = compressed(prune_yaml(std::string(component_name(c)), "magnitude", s), 1, c);
      EXPECT_EQ(got.data, expected) << component_name(c) << " s=" << s;
      // Zero entries are the smallest, so they are taken first.
      EXPECT_EQ(count_zeros(got.data), std::max(k, count_zeros(w.data))) << component_name(c) << " s=" << s;
      EXPECT_EQ(k, pruned_entries({PruneMethod::Magnitude, s}, c, config_));
    }
  }
  EXPECT_GT(boundary_ties, 5);
}

TEST_F(CompressOperators, MagnitudeRowZeroesRoundSInPerRow) {
  for (double s : {0.1, 0.3, 0.5, 0.77}) {
    for (Component c : kAllComponents) {
      const HostMatrix& w = original(2, c);
      const int64_t k = static_cast<int64_t>(std::nearbyint(s * static_cast<double>(w.cols)));
      std::vector<float> expected = w.data;
      for (int64_t r = 0; r < w.rows; ++r) {
        std::vector<int64_t> idx(static_cast<size_t>(w.cols));
        std::iota(idx.begin(), idx.end(), r * w.cols);
        zero_smallest(expected, idx, k);
      }
      const HostMatrix got = compressed(prune_yaml(std::string(component_name(c)), "magnitude_row", s), 2, c);
      EXPECT_EQ(got.data, expected) << component_name(c) << " s=" << s;
      for (int64_t r = 0; r < w.rows; ++r) {
        const std::span<const float> row(got.data.data() + r * w.cols, static_cast<size_t>(w.cols));
        const std::span<const float> before(w.data.data() + r * w.cols, static_cast<size_t>(w.cols));
        EXPECT_EQ(count_zeros(row), std::max(k, count_zeros(before)));
      }
    }
  }
}

TEST_F(CompressOperators, TwoFourKeepsTheTwoLargestOfEveryGroupOfFour) {
  for (Component c : kAllComponents) {
    const HostMatrix& w = original(0, c);
    const HostMatrix got = compressed(prune_yaml(std::string(component_name(c)), "2:4", 0.5), 0, c);
    int64_t zeroed = 0;
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t j = 0; j < w.cols; j += 4) {
        const float* a = w.data.data() + r * w.cols + j;
        const float* b = got.data.data() + r * w.cols + j;
        std::vector<int> order = {0, 1, 2, 3};
        std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return std::abs(a[x]) < std::abs(a[y]); });
        EXPECT_EQ(b[order[0]], 0.0f);
        EXPECT_EQ(b[order[1]], 0.0f);
        EXPECT_EQ(b[order[2]], a[order[2]]);
        EXPECT_EQ(b[order[3]], a[order[3]]);
        EXPECT_GE(std::count(b, b + 4, 0.0f), 2);
        zeroed += 2;
      }
    EXPECT_EQ(zeroed, pruned_entries({PruneMethod::TwoFour, 0.5}, c, config_));
  }
}

TEST_F(CompressOperators, Int8ErrorIsAtMostHalfAStepPerElement) {
  for (Component c : kAllComponents) {
    const HostMatrix& w = original(3, c);
    const HostMatrix got = compressed(fmt::format("components:\n  - {{layers: all, names: [{}], quant: int8}}\n",
                                                  component_name(c)), 3, c);
    for (int64_t r = 0; r < w.rows; ++r) {
      float mx = 0.0f;
      for (int64_t j = 0; j < w.cols; ++j) mx = std::max(mx, std::abs(w.data[r * w.cols + j]));
      const float scale = mx / 127.0f;
      ASSERT_GT(scale, 0.0f);
      float top = 0.0f;
      for (int64_t j = 0; j < w.cols; ++j) {
        const float before = w.data[r * w.cols + j], after = got.data[r * w.cols + j];
        EXPECT_LE(std::abs(after - before), scale * 0.5f * (1.0f + 1e-5f)) << component_name(c) << " " << r << "," << j;
        const float q = std::nearbyint(after / scale);
        EXPECT_EQ(after, q * scale);  // on the grid
        EXPECT_LE(std::abs(q), 127.0f);
        top = std::max(top, std::abs(q));
      }
      EXPECT_EQ(top, 127.0f);  // the largest entry maps to ±127
    }
  }
}

TEST_F(CompressOperators, PruneThenQuantizeKeepsTheZeros) {
  const std::string yaml =
      "components:\n  - {layers: all, names: [up], prune: {method: magnitude, sparsity: 0.6}, quant: int8}\n";
  const HostMatrix pruned = compressed(prune_yaml("up", "magnitude", 0.6), 0, Component::Up);
  const HostMatrix both = compressed(yaml, 0, Component::Up);
  EXPECT_EQ(count_zeros(both.data), count_zeros(pruned.data));  // int8 keeps zeros (and makes no new ones here)
  for (size_t i = 0; i < both.data.size(); ++i)
    if (pruned.data[i] == 0.0f) {
      EXPECT_EQ(both.data[i], 0.0f);
    }
  // The scale comes from the pruned row (its max is unchanged: pruning removes the smallest entries).
  HostMatrix manual = pruned;
  quantize_int8_rows(manual, shard_geometry(Component::Up, config_, pristine_.layout), comm_);
  EXPECT_EQ(both.data, manual.data);
}

// Independent head scores: sum of squares of the q rows / o columns of the query heads of a KV head and its
// k / v rows.
std::vector<int64_t> reference_head_order(const HostLayer& layer, const ModelConfig& c) {
  const int64_t D = c.head_dim, G = c.num_heads / c.num_kv_heads;
  std::vector<double> score(static_cast<size_t>(c.num_kv_heads), 0.0);
  auto sq = [](float x) { return static_cast<double>(x) * x; };
  for (int64_t g = 0; g < c.num_kv_heads; ++g) {
    const HostMatrix &q = layer.linear.q, &k = layer.linear.k, &v = layer.linear.v, &o = layer.linear.o;
    for (int64_t r = g * G * D; r < (g + 1) * G * D; ++r)
      for (int64_t j = 0; j < c.hidden_size; ++j) score[g] += sq(q.data[r * q.cols + j]) + sq(o.data[j * o.cols + r]);
    for (int64_t r = g * D; r < (g + 1) * D; ++r)
      for (int64_t j = 0; j < c.hidden_size; ++j) score[g] += sq(k.data[r * k.cols + j]) + sq(v.data[r * v.cols + j]);
  }
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  return order;
}

TEST_F(CompressOperators, HeadPruningZeroesTheLowestScoredKvHeadWithItsQueryHeads) {
  SoloCommunicator comm;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const std::vector<int64_t> order = reference_head_order(pristine_.layers[l], config_);
    EXPECT_EQ(rank_kv_heads(pristine_.layers[l], config_, pristine_.layout, comm), order);
    const int64_t g = order[0], D = config_.head_dim, G = 2;
    const std::string yaml = prune_yaml("q, k, v, o", "heads", 0.5);
    const HostMatrix q = compressed(yaml, l, Component::Q), k = compressed(yaml, l, Component::K),
                     o = compressed(yaml, l, Component::O);
    for (int64_t r = 0; r < q.rows; ++r) {
      const bool pruned = r >= g * G * D && r < (g + 1) * G * D;
      for (int64_t j = 0; j < q.cols; ++j) {
        EXPECT_EQ(q.data[r * q.cols + j], pruned ? 0.0f : original(l, Component::Q).data[r * q.cols + j]);
        EXPECT_EQ(o.data[j * o.cols + r], pruned ? 0.0f : original(l, Component::O).data[j * o.cols + r]);
      }
    }
    for (int64_t r = 0; r < k.rows; ++r) {
      const bool pruned = r >= g * D && r < (g + 1) * D;
      for (int64_t j = 0; j < k.cols; ++j)
        EXPECT_EQ(k.data[r * k.cols + j], pruned ? 0.0f : original(l, Component::K).data[r * k.cols + j]);
    }
    EXPECT_EQ(count_zeros(q.data), pruned_entries({PruneMethod::Heads, 0.5}, Component::Q, config_));
  }
}

TEST_F(CompressOperators, HeadPruningEqualsZeroingThoseHeadsOutputs) {
  // Reference: the uncompressed model with the o_proj columns of the pruned query heads zeroed, i.e. those
  // heads' attention outputs contribute nothing.
  HostWeights manual = pristine_;
  const int64_t D = config_.head_dim, G = 2;
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const int64_t g = reference_head_order(pristine_.layers[l], config_)[0];
    HostMatrix& o = manual.layers[l].linear.o;
    for (int64_t i = 0; i < o.rows; ++i)
      for (int64_t r = g * G * D; r < (g + 1) * G * D; ++r) o.data[i * o.cols + r] = 0.0f;
  }
  auto reference_model = make_model(manual, config_);
  const std::vector<float> expected = logits(*reference_model);
  auto model = make_model();
  const std::vector<float> base = logits(*model);
  EXPECT_GT(max_abs_diff(base, expected), 1e-2);  // pruning a head matters
  for (const char* names : {"q, k, v, o", "o", "v"}) {  // zero v rows also make the head's output exactly zero
    apply_plan(parse_plan(prune_yaml(names, "heads", 0.5), config_, "heads.yaml"), pristine_, *model);
    EXPECT_LE(max_abs_diff(logits(*model), expected), 1e-5) << names;
  }
}

TEST_F(CompressOperators, ChannelPruningZeroesGateUpRowsAndDownColumns) {
  const std::string yaml = prune_yaml("gate, up, down", "channels", 0.25);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    const HostLayer& layer = pristine_.layers[l];
    std::vector<double> score(static_cast<size_t>(config_.intermediate_size), 0.0);
    for (int64_t f = 0; f < config_.intermediate_size; ++f)
      for (int64_t j = 0; j < config_.hidden_size; ++j) {
        const double a = layer.linear.gate.data[f * 64 + j], b = layer.linear.up.data[f * 64 + j],
                     d = layer.linear.down.data[j * config_.intermediate_size + f];
        score[f] += a * a + b * b + d * d;
      }
    std::vector<int64_t> order(score.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
    const int64_t k = 44;  // round(0.25 · 176)
    std::vector<bool> pruned(score.size(), false);
    for (int64_t i = 0; i < k; ++i) pruned[order[i]] = true;
    const HostMatrix gate = compressed(yaml, l, Component::Gate), down = compressed(yaml, l, Component::Down);
    for (int64_t f = 0; f < config_.intermediate_size; ++f)
      for (int64_t j = 0; j < config_.hidden_size; ++j) {
        EXPECT_EQ(gate.data[f * 64 + j], pruned[f] ? 0.0f : layer.linear.gate.data[f * 64 + j]);
        EXPECT_EQ(down.data[j * 176 + f], pruned[f] ? 0.0f : layer.linear.down.data[j * 176 + f]);
      }
    EXPECT_EQ(count_zeros(down.data), pruned_entries({PruneMethod::Channels, 0.25}, Component::Down, config_));
  }
}

TEST_F(CompressOperators, RemovingLayerEqualsTheModelWithoutThatLayer) {
  auto model = make_model();
  for (int64_t i = 0; i < config_.num_layers; ++i) {
    HostWeights without = pristine_;
    without.layers.erase(without.layers.begin() + i);
    ModelConfig shorter = config_;
    shorter.num_layers -= 1;
    auto reference = make_model(without, shorter);
    apply_plan(parse_plan(fmt::format("drop_layers: [{}]\n", i), config_, "drop.yaml"), pristine_, *model);
    EXPECT_EQ(logits(*model), logits(*reference)) << "layer " << i;
  }
}

TEST_F(CompressOperators, PlanAThenPlanBEqualsPlanBOnFreshWeights) {
  const ValidatedPlan a = parse_plan(R"(drop_layers: [2]
components:
  - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}, quant: int8}
  - {layers: [0], names: [k, v], prune: {method: heads, sparsity: 0.5}}
  - {layers: [1], names: [gate, up, down], prune: {method: channels, sparsity: 0.3}}
)", config_, "a.yaml");
  const ValidatedPlan b = parse_plan(R"(drop_layers: [0]
components:
  - {layers: [1, 2], names: [o, down], prune: {method: magnitude_row, sparsity: 0.4}}
  - {layers: [3], names: [gate, up], prune: {method: "2:4"}, quant: int8}
)", config_, "b.yaml");
  auto reused = make_model();
  apply_plan(a, pristine_, *reused);
  const std::vector<float> after_a = logits(*reused);
  apply_plan(b, pristine_, *reused);
  auto fresh = make_model();
  apply_plan(b, pristine_, *fresh);
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    EXPECT_EQ(reused->weights().layers[l].removed, fresh->weights().layers[l].removed);
    for (Component c : kAllComponents)
      EXPECT_EQ(download(reused->weights().layers[l].linear[c]), download(fresh->weights().layers[l].linear[c]));
  }
  EXPECT_EQ(logits(*reused), logits(*fresh));
  EXPECT_GT(max_abs_diff(after_a, logits(*fresh)), 1e-2);
  // The identity plan restores the uncompressed model, and pristine weights never changed.
  apply_plan(validate_plan(CompressionPlan::identity(config_.num_layers), config_, "identity"), pristine_, *reused);
  EXPECT_EQ(logits(*reused), logits(*make_model()));
  const HostWeights reloaded = load_host_weights(*ckpt_, pristine_.layout);
  for (int64_t l = 0; l < config_.num_layers; ++l)
    for (Component c : kAllComponents) EXPECT_EQ(reloaded.layers[l].linear[c].data, pristine_.layers[l].linear[c].data);
}

TEST_F(CompressOperators, InvalidPlansAreRejectedBeforeTheyCanBeApplied) {
  // Only a ValidatedPlan can be applied: a bad plan built in code fails its validation, naming the source.
  CompressionPlan bad = CompressionPlan::identity(config_.num_layers);
  bad.at(0, Component::Q).prune = PruneSpec{PruneMethod::Magnitude, 1.5};
  try {
    validate_plan(bad, config_, "code");
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("code: layer 0 q: sparsity 1.5 is outside [0, 1)"));
  }
  CompressionPlan all_removed = CompressionPlan::identity(config_.num_layers);
  for (auto& layer : all_removed.layers) layer.removed = true;
  EXPECT_THROW(validate_plan(all_removed, config_, "code"), InputError);
  // A plan validated for another tensor-parallel size is a caller's bug: refused before touching the weights.
  auto model = make_model();
  const ValidatedPlan for_tp2 = parse_plan(prune_yaml("down", "2:4", 0.5), config_, "tp2.yaml", 2);
  EXPECT_THROW(apply_plan(for_tp2, pristine_, *model), InternalError);
  EXPECT_THROW(compress_linear(for_tp2, config_, pristine_, 0, Component::Down, comm_), InternalError);
  EXPECT_EQ(logits(*model), logits(*make_model()));
}

}  // namespace
}  // namespace divprune

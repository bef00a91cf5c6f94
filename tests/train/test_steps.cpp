// The training loss against the inference forward, the masks (pruned weights and removed layers), the
// optimizer, refusals, and a few steps that lower the loss of tiny-llama2-trained on WikiText-2 valid.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>

#include "core/errors.hpp"
#include "metrics/corpus.hpp"
#include "model/vocab_stats.hpp"
#include "tests/model/test_util.hpp"
#include "tests/train/tiny_model.hpp"
#include "train/trainer.hpp"

namespace divprune::train {
namespace {

// Summed inference NLL of tokens[1..] given tokens[0..n) by the model's forward (src/model) and the vocab
// statistics every metric uses.
double inference_nll(LlamaModel& model, const std::vector<int32_t>& tokens) {
  const std::vector<int32_t> inputs(tokens.begin(), tokens.end() - 1), targets(tokens.begin() + 1, tokens.end());
  KvCache cache = model.make_cache(static_cast<int64_t>(inputs.size()));
  Tensor logits = model.forward(inputs, 0, cache);
  VocabPartials partials;
  model.backend().vocab_partials(logits, targets, model.layout().vocab.begin, partials);
  const TokenStats stats = combine_vocab_partials(partials, model.comm(), true);
  double sum = 0.0;
  for (double x : stats.nll) sum += x;
  return sum;
}

double training_nll(const HostWeights& weights, const ModelConfig& config, const std::vector<int32_t>& tokens) {
  const ParamLayout layout = make_param_layout(config, {});
  const std::vector<float> params = pack_params(layout, weights);
  TrainModel<float> model(layout);
  return model.loss(tokens, params);
}

TEST(TrainLoss, EqualsInferenceNllOnTinyModel) {
  const ModelConfig config = test::tiny_config();
  const HostWeights weights = test::tiny_weights(config);
  CpuBackend backend;
  SoloCommunicator comm;
  LlamaModel model(config, weights.layout, backend, comm, upload_weights(backend, weights));
  const std::vector<int32_t> tokens = test::random_tokens(20, config.vocab_size, 3);
  // The same float arithmetic in the same order: equal to the last bit.
  EXPECT_EQ(training_nll(weights, config, tokens) - inference_nll(model, tokens), 0.0);
}

TEST(TrainLoss, EqualsInferenceNllOnTinyLlama2Trained) {
  ASSETS_OR_SKIP("tiny-llama2-trained");
  auto loaded = test::load_model(test::assets_dir() / "tiny-llama2-trained");
  const ModelConfig& config = loaded->checkpoint->config();
  const HostWeights weights = load_host_weights(*loaded->checkpoint, loaded->model->layout());
  Tokenizer tokenizer(test::assets_dir() / "llama2-tokenizer.model");
  std::vector<int32_t> tokens = {1};
  for (int32_t id : tokenizer.encode("The tower is 324 metres tall , about the same height as an 81 @-@ storey building"))
    tokens.push_back(id);
  const double inference = inference_nll(*loaded->model, tokens);
  EXPECT_EQ(training_nll(weights, config, tokens), inference);
  test::report_measured("tiny-llama2-trained step-0 training NLL = inference NLL",
                        fmt::format("{:.9f} per token over {} tokens", inference / (tokens.size() - 1),
                                    tokens.size() - 1));
}

TEST(TrainSchedule, WarmupThenCosine) {
  TrainSettings s;
  s.steps = 12;
  s.warmup_steps = 2;
  s.lr = 1e-3f;
  s.min_lr = 1e-4f;
  EXPECT_NEAR(learning_rate(s, 0), 5e-4, 1e-10);
  EXPECT_NEAR(learning_rate(s, 1), 1e-3, 1e-10);
  EXPECT_NEAR(learning_rate(s, 2), 1e-3, 1e-10);  // cosine starts at the peak
  EXPECT_NEAR(learning_rate(s, 7), 5.5e-4, 1e-10);  // half way: (lr + min_lr) / 2
  EXPECT_NEAR(learning_rate(s, 12), 1e-4, 1e-10);
}

TrainSettings quick_settings() {
  TrainSettings s;
  s.steps = 3;
  s.batch_sequences = 2;
  s.seq_len = 8;
  s.lr = 1e-2f;
  s.min_lr = 1e-3f;
  s.warmup_steps = 1;
  s.weight_decay = 0.1f;
  return s;
}

std::vector<std::vector<int32_t>> tiny_batch(const ModelConfig& config, unsigned seed) {
  return {test::random_tokens(9, config.vocab_size, seed), test::random_tokens(9, config.vocab_size, seed + 1)};
}

TEST(TrainMasks, PrunedWeightsStayZeroAndRemovedLayersStayRemoved) {
  const ModelConfig config = test::tiny_config();
  HostWeights weights = test::tiny_weights(config);
  // A compressed working copy: every other entry of layer 1's q and down pruned, layer 0 removed.
  for (Component c : {Component::Q, Component::Down}) {
    auto& data = weights.layers[1].linear[c].data;
    for (size_t i = 0; i < data.size(); i += 2) data[i] = 0.0f;
  }
  const HostWeights before = weights;
  SoloCommunicator comm;
  Trainer trainer(weights, config, {true, false}, comm, quick_settings());
  const auto batch = tiny_batch(config, 5);
  for (int s = 0; s < 3; ++s) EXPECT_TRUE(std::isfinite(trainer.step(batch).loss));
  trainer.write_back(weights);
  // Layer 0 is untouched (no parameters, no decay); layer 1's pruned entries are still exactly zero and the
  // others moved.
  for (Component c : kAllComponents) EXPECT_EQ(weights.layers[0].linear[c].data, before.layers[0].linear[c].data);
  EXPECT_EQ(weights.layers[0].attn_norm, before.layers[0].attn_norm);
  for (Component c : {Component::Q, Component::Down}) {
    const auto& after = weights.layers[1].linear[c].data;
    for (size_t i = 0; i < after.size(); ++i) {
      if (i % 2 == 0) {
        ASSERT_EQ(after[i], 0.0f) << component_name(c) << " entry " << i;
      } else {
        EXPECT_NE(after[i], before.layers[1].linear[c].data[i]) << component_name(c) << " entry " << i;
      }
    }
  }
  EXPECT_NE(weights.embed.data, before.embed.data);
}

TEST(TrainOptimizer, FirstAdamStepMovesEveryTrainedWeightByTheLearningRate) {
  // Step 1 of Adam: m_hat / sqrt(v_hat) = g / |g| = sign(g), so without decay every parameter whose gradient is
  // well above adam_eps moves by lr.
  const ModelConfig config = test::tiny_config();
  const HostWeights weights = test::tiny_weights(config);
  TrainSettings s = quick_settings();
  s.weight_decay = 0.0f;
  s.warmup_steps = 0;
  s.clip_norm = 0.0f;  // unclipped: |g| >> adam_eps
  SoloCommunicator comm;
  Trainer trainer(weights, config, {}, comm, s);
  const std::vector<float> p0(trainer.params().begin(), trainer.params().end());
  const StepStats stats = trainer.step(tiny_batch(config, 9));
  EXPECT_GT(stats.grad_norm, 1e-2);
  EXPECT_DOUBLE_EQ(stats.lr, s.lr);
  const int64_t q0 = trainer.layout().layers[1].linear[0];
  int moved = 0;
  for (int64_t i = q0; i < q0 + 64; ++i) {
    const float delta = std::abs(trainer.params()[i] - p0[i]);
    if (delta > 0.5f * s.lr) {
      EXPECT_NEAR(delta, s.lr, 1e-3f * s.lr);
      ++moved;
    }
  }
  EXPECT_GT(moved, 48);
}

TEST(TrainRefusals, TensorParallelAndBadGroups) {
  const ModelConfig config = test::tiny_config();
  HostWeights weights = test::tiny_weights(config);
  SoloCommunicator comm;
  TrainSettings s = quick_settings();
  s.grad_groups = 3;  // does not divide the batch of 2
  EXPECT_THROW(
      {
        try {
          Trainer(weights, config, {}, comm, s);
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("batch_sequences 2 must be a multiple of grad_groups 3"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      InputError);
  weights.layout.shard = TpShard{0, 2};
  EXPECT_THROW(
      {
        try {
          Trainer(weights, config, {}, comm, quick_settings());
        } catch (const InputError& e) {
          EXPECT_NE(std::string(e.what()).find("supports tp = 1 only, found tp = 2"), std::string::npos) << e.what();
          throw;
        }
      },
      InputError);
}

// The first lines of WikiText-2 valid under the perplexity protocol's tokenisation.
std::vector<int32_t> wikitext_valid_head(size_t lines) {
  Tokenizer tokenizer(test::assets_dir() / "llama2-tokenizer.model");
  std::ifstream in(test::assets_dir() / "wikitext2.valid.txt");
  std::vector<int32_t> stream;
  std::string line;
  for (size_t read = 0; read < lines && std::getline(in, line);) {
    const std::string s = strip(line);
    if (s.empty()) continue;
    for (int32_t id : tokenizer.encode(s)) stream.push_back(id);
    stream.push_back(kNewlineToken);
    ++read;
  }
  return stream;
}

// Trains tiny-llama2-trained for `steps` steps on WikiText-2 valid windows; returns the stats and the mean loss
// of the first step's batch after training.
struct TextRun {
  std::vector<StepStats> stats;
  double loss_after = 0.0;
  double seconds_per_step = 0.0;
  double cpu_seconds_per_step = 0.0;  // process CPU time: the machine's 2 cores are shared
};
TextRun train_tiny_llama2(const TrainSettings& s, size_t lines) {
  auto checkpoint = open_checkpoint(test::assets_dir() / "tiny-llama2-trained");
  const ModelConfig& config = checkpoint->config();
  const HostWeights weights = load_host_weights(*checkpoint, make_shard_layout(config, TpShard{0, 1}));
  const std::vector<int32_t> stream = wikitext_valid_head(lines);
  WindowSampler sampler(stream, s.seq_len, config.bos_id, s.seed);
  SoloCommunicator comm;
  Trainer trainer(weights, config, {}, comm, s);
  TextRun run;
  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  for (int64_t i = 0; i < s.steps; ++i) run.stats.push_back(trainer.step(sampler));
  run.seconds_per_step = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / s.steps;
  run.cpu_seconds_per_step = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC / s.steps;
  TrainModel<float> eval(trainer.layout());
  int64_t tokens = 0;
  for (int64_t i = 0; i < s.batch_sequences; ++i) {
    const auto window = sampler.window(i);
    run.loss_after += eval.loss(window, trainer.params());
    tokens += static_cast<int64_t>(window.size()) - 1;
  }
  run.loss_after /= static_cast<double>(tokens);
  return run;
}

TEST(TrainText, FewStepsLowerTheLossOfTinyLlama2Trained) {
  ASSETS_OR_SKIP("tiny-llama2-trained");
  ASSETS_OR_SKIP("wikitext2.valid.txt");
  TrainSettings s;
  s.steps = 4;
  s.batch_sequences = 2;
  s.seq_len = 32;
  s.lr = 1e-3f;
  s.min_lr = 1e-4f;
  s.warmup_steps = 1;
  const TextRun run = train_tiny_llama2(s, 4);  // 2 windows: every step sees the same text
  ASSERT_EQ(run.stats.size(), 4u);
  for (const auto& st : run.stats) std::printf("step %lld loss %.5f grad_norm %.4f lr %.2e\n",
                                               static_cast<long long>(st.step), st.loss, st.grad_norm, st.lr);
  EXPECT_LT(run.loss_after, run.stats[0].loss - 0.1);
  EXPECT_LT(run.stats.back().loss, run.stats[0].loss);
}

// Not run by ctest: the time per step and tokens/s quoted in the report (run with
// --gtest_also_run_disabled_tests).
TEST(TrainText, DISABLED_MeasureStepTime) {
  ASSETS_OR_SKIP("tiny-llama2-trained");
  TrainSettings s;
  s.steps = 3;
  s.batch_sequences = 4;
  s.seq_len = 256;
  const TextRun run = train_tiny_llama2(s, 400);
  const double tokens = static_cast<double>(s.batch_sequences * s.seq_len);
  test::report_measured("tiny-llama2-trained training step (batch 4 x 256 tokens, fp32 CPU)",
                        fmt::format("{:.3f} s/step wall, {:.0f} tokens/s; {:.3f} CPU s/step, {:.0f} tokens per CPU s",
                                    run.seconds_per_step, tokens / run.seconds_per_step, run.cpu_seconds_per_step,
                                    tokens / run.cpu_seconds_per_step));
}

}  // namespace
}  // namespace divprune::train

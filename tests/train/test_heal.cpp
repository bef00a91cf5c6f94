// heal(): a plan's working copy trained on a text: the loss falls, removed layers stay removed, pruned entries
// stay zero, quantized components end on the int8 grid again, and tp > 1 is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "compress/apply.hpp"
#include "core/errors.hpp"
#include "tests/train/tiny_model.hpp"
#include "train/heal.hpp"
#include "train/train_checkpoint.hpp"

namespace divprune::train {
namespace {

CompressionPlan tiny_plan() {
  CompressionPlan plan = CompressionPlan::identity(2);
  plan.layers[0].removed = true;
  plan.at(1, Component::Q).prune = PruneSpec{PruneMethod::Magnitude, 0.5};
  plan.at(1, Component::Gate).prune = PruneSpec{PruneMethod::Magnitude, 0.25};
  plan.at(1, Component::Gate).quant = QuantMethod::Int8;
  plan.at(1, Component::Down).quant = QuantMethod::Int8;
  return plan;
}

TrainSettings heal_settings() {
  TrainSettings s;
  s.steps = 8;
  s.batch_sequences = 2;
  s.seq_len = 12;
  s.lr = 1e-2f;
  s.min_lr = 1e-3f;
  s.warmup_steps = 1;
  return s;
}

// Every entry of each row is an integer multiple of that row's scale max|w| / 127.
void expect_int8_grid(const HostMatrix& m) {
  for (int64_t r = 0; r < m.rows; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < m.cols; ++c) amax = std::max(amax, std::abs(m.data[r * m.cols + c]));
    const float scale = amax / 127.0f;
    for (int64_t c = 0; c < m.cols; ++c) {
      const float q = m.data[r * m.cols + c] / scale;
      EXPECT_NEAR(q, std::nearbyint(q), 1e-3f) << "row " << r << " col " << c;
    }
  }
}

TEST(Heal, TrainsThePlanAndKeepsItsStructure) {
  const ModelConfig config = test::tiny_config();
  const HostWeights pristine = test::tiny_weights(config, 5);
  const ValidatedPlan plan = validate_plan(tiny_plan(), config, "test plan", 1);
  const std::vector<int32_t> text = test::random_tokens(24, config.vocab_size, 8);  // 2 windows of 12
  SoloCommunicator comm;
  const HealResult healed = heal(config, pristine, plan, text, heal_settings(), comm);

  ASSERT_EQ(healed.curve.size(), 8u);
  EXPECT_LT(healed.curve.back().loss, healed.curve.front().loss - 0.2);
  EXPECT_EQ(healed.removed, (std::vector<bool>{true, false}));
  for (Component c : kAllComponents)
    EXPECT_EQ(healed.weights.layers[0].linear[c].data, pristine.layers[0].linear[c].data);

  // Pruned entries (zeros of the plan's working copy) are still zero; the kept ones were trained.
  SoloCommunicator solo;
  const HostMatrix q_plan = compress_linear(plan, config, pristine, 1, Component::Q, solo);
  const HostMatrix& q_healed = healed.weights.layers[1].linear.q;
  int zeros = 0;
  for (size_t i = 0; i < q_plan.data.size(); ++i) {
    if (q_plan.data[i] == 0.0f) {
      EXPECT_EQ(q_healed.data[i], 0.0f);
      ++zeros;
    } else {
      EXPECT_NE(q_healed.data[i], q_plan.data[i]);
    }
  }
  EXPECT_EQ(zeros, static_cast<int>(q_plan.data.size() / 2));
  const HostMatrix gate_plan = compress_linear(plan, config, pristine, 1, Component::Gate, solo);
  for (size_t i = 0; i < gate_plan.data.size(); ++i)
    if (gate_plan.data[i] == 0.0f) {
      EXPECT_EQ(healed.weights.layers[1].linear.gate.data[i], 0.0f);
    }
  // Quantized components are on the int8 grid again, and not the unhealed values.
  expect_int8_grid(healed.weights.layers[1].linear.gate);
  expect_int8_grid(healed.weights.layers[1].linear.down);
  EXPECT_NE(healed.weights.layers[1].linear.down.data,
            compress_linear(plan, config, pristine, 1, Component::Down, solo).data);

  // The healed model scores the text better than the unhealed plan (the forward of training, same windows).
  const ParamLayout layout = make_param_layout(config, healed.removed);
  HostWeights unhealed = pristine;
  for (Component c : kAllComponents) unhealed.layers[1].linear[c] = compress_linear(plan, config, pristine, 1, c, solo);
  TrainModel<float> model(layout);
  std::vector<int32_t> all = {config.bos_id};
  all.insert(all.end(), text.begin(), text.end());
  EXPECT_LT(model.loss(all, pack_params(layout, healed.weights)), model.loss(all, pack_params(layout, unhealed)));
}

// A run stopped after a checkpoint (written to disk and read back) and resumed ends with the weights and loss curve
// of an uninterrupted run, bit for bit; a checkpoint of another key or a truncated one is refused.
TEST(Heal, ResumesFromACheckpointBitForBit) {
  const ModelConfig config = test::tiny_config();
  const HostWeights pristine = test::tiny_weights(config, 5);
  const ValidatedPlan plan = validate_plan(tiny_plan(), config, "test plan", 1);
  const std::vector<int32_t> text = test::random_tokens(48, config.vocab_size, 8);
  SoloCommunicator comm;
  const HealResult want = heal(config, pristine, plan, text, heal_settings(), comm);

  const std::filesystem::path file = std::filesystem::temp_directory_path() / ("divprune_train_checkpoint_" + std::to_string(::getpid()) + ".bin");
  HealHooks stop_after_3;
  stop_after_3.after_step = [&](const Trainer& trainer, const std::vector<StepStats>& curve) {
    if (trainer.step_index() != 3) return;
    write_train_checkpoint(file, "key", TrainCheckpoint{HealResume{trainer.state(), curve}, 1.5});
    throw std::runtime_error("killed");
  };
  EXPECT_THROW(heal(config, pristine, plan, text, heal_settings(), comm, stop_after_3), std::runtime_error);
  const auto checkpoint = read_train_checkpoint(file, "key");
  ASSERT_TRUE(checkpoint.has_value());
  EXPECT_EQ(checkpoint->resume.state.step, 3);
  EXPECT_EQ(checkpoint->seconds, 1.5);
  HealHooks resume;
  resume.resume = checkpoint->resume;
  int64_t steps_run = 0;
  resume.after_step = [&](const Trainer&, const std::vector<StepStats>&) { ++steps_run; };
  const HealResult got = heal(config, pristine, plan, text, heal_settings(), comm, resume);
  EXPECT_EQ(steps_run, 5);
  ASSERT_EQ(got.curve.size(), want.curve.size());
  for (size_t i = 0; i < want.curve.size(); ++i) {
    EXPECT_EQ(got.curve[i].loss, want.curve[i].loss) << i;
    EXPECT_EQ(got.curve[i].grad_norm, want.curve[i].grad_norm) << i;
  }
  for (Component c : kAllComponents) EXPECT_EQ(got.weights.layers[1].linear[c].data, want.weights.layers[1].linear[c].data);
  EXPECT_EQ(got.weights.embed.data, want.weights.embed.data);
  EXPECT_EQ(got.weights.final_norm, want.weights.final_norm);

  EXPECT_THROW(read_train_checkpoint(file, "another key"), InputError);
  std::filesystem::resize_file(file, 100);
  EXPECT_THROW(read_train_checkpoint(file, "key"), InputError);
  std::filesystem::remove(file);
  EXPECT_FALSE(read_train_checkpoint(file, "key").has_value());
}

TEST(Heal, RefusesTensorParallelism) {
  ModelConfig config = test::tiny_config();
  config.num_kv_heads = 2;  // so that the plan validates at tp = 2
  const ValidatedPlan plan = validate_plan(tiny_plan(), config, "test plan", 2);
  SoloCommunicator comm;
  try {
    heal(config, test::tiny_weights(config), plan, test::random_tokens(24, 32, 1), heal_settings(), comm);
    FAIL() << "heal accepted tp = 2";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("heal supports tp = 1 only, found tp = 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace divprune::train

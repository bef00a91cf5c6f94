// Data parallelism (2 ranks): a fixed-seed run over MPI_COMM_WORLD, each rank computing half of every batch,
// has the loss curve and the final weights of the single-rank run with the same grad_groups, bit for bit
// (train/trainer.hpp: the gradient is reduced in group order, not by an MPI all-reduce).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstring>

#include "core/mpi_communicator.hpp"
#include "tests/train/tiny_model.hpp"
#include "train/trainer.hpp"

namespace divprune::train {
namespace {

struct Curve {
  std::vector<double> loss, grad_norm;
  std::vector<float> params;
};

Curve run(Communicator& comm, int64_t grad_groups, int64_t batch) {
  const ModelConfig config = test::tiny_config();
  const HostWeights weights = test::tiny_weights(config, 11);
  TrainSettings s;
  s.steps = 4;
  s.batch_sequences = batch;
  s.seq_len = 12;
  s.lr = 1e-2f;
  s.min_lr = 1e-3f;
  s.warmup_steps = 1;
  s.weight_decay = 0.05f;
  s.clip_norm = 0.5f;  // active: the unclipped norm is larger
  s.grad_groups = grad_groups;
  s.seed = 42;
  // 4 windows: every step trains on the same text (in another order), so the loss must fall.
  const std::vector<int32_t> stream = test::random_tokens(48, config.vocab_size, 99);
  WindowSampler sampler(stream, s.seq_len, config.bos_id, s.seed);
  Trainer trainer(weights, config, {}, comm, s);
  Curve curve;
  for (int64_t i = 0; i < s.steps; ++i) {
    const StepStats st = trainer.step(sampler);
    curve.loss.push_back(st.loss);
    curve.grad_norm.push_back(st.grad_norm);
  }
  curve.params.assign(trainer.params().begin(), trainer.params().end());
  return curve;
}

void expect_identical(const Curve& a, const Curve& b) {
  ASSERT_EQ(a.loss.size(), b.loss.size());
  for (size_t i = 0; i < a.loss.size(); ++i) {
    EXPECT_EQ(a.loss[i], b.loss[i]) << "step " << i;
    EXPECT_EQ(a.grad_norm[i], b.grad_norm[i]) << "step " << i;
  }
  ASSERT_EQ(a.params.size(), b.params.size());
  EXPECT_EQ(std::memcmp(a.params.data(), b.params.data(), a.params.size() * sizeof(float)), 0);
}

TEST(TrainDataParallel, TwoRanksGiveTheSingleRankLossCurveBitForBit) {
  MpiCommunicator world(MPI_COMM_WORLD);
  ASSERT_EQ(world.size(), 2);
  SoloCommunicator solo;
  for (int64_t groups : {2, 4}) {
    const Curve single = run(solo, groups, 4);
    const Curve parallel = run(world, groups, 4);
    expect_identical(single, parallel);
    EXPECT_LT(single.loss.back(), single.loss.front());
    if (world.rank() == 0) {
      std::printf("grad_groups %lld loss curve:", static_cast<long long>(groups));
      for (double l : single.loss) std::printf(" %.9f", l);
      std::printf("\n");
    }
  }
  // Another grouping is another float summation order: the same curve to float accuracy, not bit for bit.
  const Curve one_group = run(solo, 1, 4), two_groups = run(solo, 2, 4);
  for (size_t i = 0; i < one_group.loss.size(); ++i)
    EXPECT_NEAR(one_group.loss[i], two_groups.loss[i], 1e-4 * one_group.loss[i]);
}

}  // namespace
}  // namespace divprune::train

#pragma once
// Training of a tp = 1 model over data-parallel replicas: batches of token windows, the gradient reduced over
// the replicas in a fixed order, global gradient-norm clipping, AdamW (decoupled weight decay, bias
// correction) with linear warm-up and a cosine decay. Host fp32 on the CPU (see train_model.hpp for how a CUDA
// engine slots in).
//
// Bit-identical results at any number of data-parallel ranks. The global batch of B sequences is cut into G
// contiguous gradient groups (`grad_groups`, default: the number of ranks). A group's gradient is the sum of its
// sequences' gradients in batch order; the batch gradient is the sum of the group gradients in group order.
// Each rank computes the groups [r G/P, (r+1) G/P); the group gradients are all-gathered (in chunks, so the
// extra memory is bounded) and every rank adds them in group order. Float addition is not associative, so an
// MPI all-reduce (whose order depends on the library and the rank count) could not give this; with the same G,
// the additions are the same at any rank count that divides G. So a run at P = 1 with grad_groups = 2 has the
// loss curve of a run at P = 2, bit for bit (tests/train: train_data_parallel).
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/communicator.hpp"
#include "model/weights.hpp"
#include "train/params.hpp"
#include "train/train_model.hpp"

namespace divprune::train {

struct TrainSettings {
  int64_t steps = 10;
  int64_t batch_sequences = 4;  // global batch: sequences per step, over all ranks
  int64_t seq_len = 128;        // tokens per sequence after the BOS (targets per sequence)
  float lr = 3e-4f;             // peak learning rate
  float min_lr = 3e-5f;         // at the end of the cosine
  int64_t warmup_steps = 2;     // linear warm-up from lr / warmup_steps to lr
  float weight_decay = 0.0f;    // decoupled (AdamW), matrices only
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float adam_eps = 1e-8f;
  float clip_norm = 1.0f;       // global gradient-norm clip; <= 0: none
  int64_t grad_groups = 0;      // 0: the number of data-parallel ranks (see the header comment)
  uint64_t seed = 1;            // order of the training windows
  int32_t bos_id = 1;
};

// Learning rate of step s (0-based) of `total`: linear warm-up over warmup_steps, then cosine to min_lr.
double learning_rate(const TrainSettings& settings, int64_t step);

// The training windows of a token stream (the perplexity protocol's tokenisation): consecutive chunks of
// seq_len tokens, each fed as [BOS] + chunk; an epoch visits them in a permutation drawn from (seed, epoch).
class WindowSampler {
 public:
  WindowSampler(std::span<const int32_t> stream, int64_t seq_len, int32_t bos_id, uint64_t seed);
  int64_t windows() const { return static_cast<int64_t>(order_size_); }
  // The i-th window of the whole run (i over all steps and sequences), as [BOS] + chunk (seq_len + 1 ids).
  std::vector<int32_t> window(int64_t i) const;

 private:
  std::vector<int32_t> stream_;
  int64_t seq_len_;
  int32_t bos_;
  uint64_t seed_;
  size_t order_size_;
  std::vector<int64_t> permutation(int64_t epoch) const;
};

struct StepStats {
  int64_t step = 0;
  double loss = 0.0;       // mean NLL over the batch's target tokens, before the update
  double grad_norm = 0.0;  // global norm before clipping
  double lr = 0.0;
  int64_t tokens = 0;      // target tokens of the global batch
};

// Everything a Trainer carries from one step to the next: with it, a run stopped after step k and restored into a
// new Trainer (same settings, same windows) continues bit for bit as if it had never stopped (the heal stage's
// checkpoints).
struct TrainerState {
  int64_t step = 0;                 // steps done
  std::vector<float> params, m, v;  // ParamLayout order; AdamW's first and second moments
};

class Trainer {
 public:
  // `weights`: the tp = 1 working copy (a plan applied); `removed[l]`: layer l is removed. `dp`: the
  // data-parallel communicator (replicas of the world, one rank each). Throws InputError for tp > 1.
  Trainer(const HostWeights& weights, const ModelConfig& config, const std::vector<bool>& removed, Communicator& dp,
          TrainSettings settings, std::unique_ptr<GradientEngine> engine = nullptr);

  // One optimizer step on the global batch `sequences` (every rank passes the same batch; each computes its
  // own groups). Sequences are [BOS] + targets.
  StepStats step(std::span<const std::vector<int32_t>> sequences);
  // step() on the windows the sampler gives for step `step_index()`.
  StepStats step(const WindowSampler& sampler);
  int64_t step_index() const { return step_; }

  TrainerState state() const { return TrainerState{step_, params_, m_, v_}; }
  // Throws InputError when the state has another parameter count than this layout (a checkpoint of another
  // plan or model). The gradient mask stays the one of the construction-time weights (pruned = exact zeros).
  void restore(const TrainerState& state);

  std::span<const float> params() const { return params_; }
  const ParamLayout& layout() const { return layout_; }
  // Writes the trained parameters into a working copy (removed layers untouched).
  void write_back(HostWeights& weights) const;

 private:
  ParamLayout layout_;
  Communicator& dp_;
  TrainSettings settings_;
  std::unique_ptr<GradientEngine> engine_;
  std::vector<float> params_, grad_, m_, v_;
  std::vector<uint8_t> grad_mask_, decay_mask_;
  int64_t step_ = 0;
};

}  // namespace divprune::train

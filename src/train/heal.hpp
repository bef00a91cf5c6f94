#pragma once
// Healing (LayerChop's continued pretraining) of one compression plan, as a library function the `heal` stage
// calls: the plan's working copy is trained on a token stream and returned with its loss curve.
//
// What healing does with each part of a plan:
//  - removed layers stay removed (no parameters, skipped by the forward and the backward);
//  - pruned entries stay exactly zero (their gradient is masked: train/params.hpp);
//  - quantized components are trained in fp32 from their pruned, unquantized values and re-quantized with the
//    plan's operator after the last step (the returned weights are again on the int8 grid of each row), so a
//    healed plan stores what the unhealed one stores; entries that are exactly zero in the checkpoint stay
//    zero as well (indistinguishable from pruned ones).
// tp = 1 only (the Trainer refuses more); data parallelism over `dp`.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "compress/plan.hpp"
#include "core/communicator.hpp"
#include "model/weights.hpp"
#include "train/trainer.hpp"

namespace divprune::train {

struct HealResult {
  HostWeights weights;           // the healed working copy (tp = 1): plan applied, trained, re-quantized
  std::vector<bool> removed;     // (L) layers the plan removes (DeviceLayer::removed when uploaded)
  std::vector<StepStats> curve;  // one entry per step
};

// The working copy training starts from: the plan applied without its quantization (pruned entries are the
// zeros, removed layers flagged). tp = 1.
HealResult heal_start(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan);
// The plan's own working copy, quantization included (what the evaluate stage measures for the plan). tp = 1.
HostWeights plan_working_copy(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan);

// Resumption and checkpointing. `resume`: a state saved after some step (with the curve up to it); the run
// continues from there with the same windows and learning rates, so its result equals an uninterrupted run's bit
// for bit. `after_step`: called on every rank after every step (the heal stage writes its checkpoints there).
struct HealResume {
  TrainerState state;
  std::vector<StepStats> curve;  // state.step entries
};
struct HealHooks {
  std::optional<HealResume> resume;
  std::function<void(const Trainer&, const std::vector<StepStats>& curve)> after_step;
};

// Trains the working copy of `plan` (validated for `config` at tp = 1) made from `pristine` for settings.steps
// steps on windows of `text` (token ids under the perplexity protocol's tokenisation, without BOS).
// Collective over `dp`: every rank passes the same arguments.
HealResult heal(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan,
                std::span<const int32_t> text, const TrainSettings& settings, Communicator& dp,
                const HealHooks& hooks = {});

}  // namespace divprune::train

#include "train/heal.hpp"

#include <fmt/format.h>

#include "compress/apply.hpp"
#include "compress/operators.hpp"
#include "core/errors.hpp"

namespace divprune::train {

HealResult heal_start(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan) {
  if (plan.tp() != 1 || pristine.layout.shard.size != 1)
    throw InputError(fmt::format("heal supports tp = 1 only, found tp = {}: run the replicas data-parallel "
                                 "with tp: 1",
                                 std::max(plan.tp(), pristine.layout.shard.size)));
  // The plan without its quantization: the values training starts from (pruned entries are the zeros).
  CompressionPlan prune_only = plan.plan();
  for (LayerPlan& layer : prune_only.layers)
    for (ComponentPlan& component : layer.components) component.quant = QuantMethod::None;
  const ValidatedPlan pruned = validate_plan(prune_only, config, "heal: the plan without quantization", 1);

  SoloCommunicator solo;  // tp = 1: the operators' tensor-parallel group is this rank alone
  HealResult result;
  result.weights = pristine;
  result.removed.assign(static_cast<size_t>(config.num_layers), false);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    result.removed[static_cast<size_t>(l)] = plan.plan().layers[static_cast<size_t>(l)].removed;
    if (result.removed[static_cast<size_t>(l)]) continue;
    for (Component c : kAllComponents)
      if (!pruned.plan().at(l, c).is_identity())
        result.weights.layers[static_cast<size_t>(l)].linear[c] = compress_linear(pruned, config, pristine, l, c, solo);
  }
  return result;
}

HostWeights plan_working_copy(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan) {
  EXPECTS(plan.tp() == 1 && pristine.layout.shard.size == 1, "plan_working_copy: tp = 1 only");
  SoloCommunicator solo;
  HostWeights w = pristine;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (plan.plan().layers[static_cast<size_t>(l)].removed) continue;
    for (Component c : kAllComponents)
      if (!plan.plan().at(l, c).is_identity())
        w.layers[static_cast<size_t>(l)].linear[c] = compress_linear(plan, config, pristine, l, c, solo);
  }
  return w;
}

HealResult heal(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan,
                std::span<const int32_t> text, const TrainSettings& settings, Communicator& dp,
                const HealHooks& hooks) {
  HealResult result = heal_start(config, pristine, plan);
  SoloCommunicator solo;

  WindowSampler sampler(text, settings.seq_len, config.bos_id, settings.seed);
  Trainer trainer(result.weights, config, result.removed, dp, settings);
  if (hooks.resume) {
    EXPECTS(static_cast<int64_t>(hooks.resume->curve.size()) == hooks.resume->state.step,
            "heal resume: the curve has one entry per step done");
    if (hooks.resume->state.step > settings.steps)
      throw InputError(fmt::format("heal checkpoint: {} steps done, more than the {} configured",
                                   hooks.resume->state.step, settings.steps));
    trainer.restore(hooks.resume->state);
    result.curve = hooks.resume->curve;
  }
  for (int64_t s = trainer.step_index(); s < settings.steps; ++s) {
    result.curve.push_back(trainer.step(sampler));
    if (hooks.after_step) hooks.after_step(trainer, result.curve);
  }
  trainer.write_back(result.weights);

  // Re-quantize what the plan quantizes, with the plan's own operator.
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (result.removed[static_cast<size_t>(l)]) continue;
    for (Component c : kAllComponents)
      if (plan.plan().at(l, c).quant == QuantMethod::Int8)
        quantize_int8_rows(result.weights.layers[static_cast<size_t>(l)].linear[c],
                           shard_geometry(c, config, pristine.layout), solo);
  }
  return result;
}

}  // namespace divprune::train

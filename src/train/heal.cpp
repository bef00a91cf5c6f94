#include "train/heal.hpp"

#include <fmt/format.h>

#include "compress/apply.hpp"
#include "compress/operators.hpp"
#include "core/errors.hpp"

namespace divprune::train {

HealResult heal(const ModelConfig& config, const HostWeights& pristine, const ValidatedPlan& plan,
                std::span<const int32_t> text, const TrainSettings& settings, Communicator& dp) {
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

  WindowSampler sampler(text, settings.seq_len, config.bos_id, settings.seed);
  Trainer trainer(result.weights, config, result.removed, dp, settings);
  for (int64_t s = 0; s < settings.steps; ++s) result.curve.push_back(trainer.step(sampler));
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

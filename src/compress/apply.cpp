#include "compress/apply.hpp"

#include <optional>
#include <span>
#include <vector>

#include "compress/calibrated_operators.hpp"
#include "compress/operators.hpp"
#include "core/errors.hpp"
#include "kernels/backend.hpp"
#include "model/llama.hpp"
#include "parallel/replica.hpp"
#include "parallel/topology.hpp"

namespace divprune {

namespace {

// Head and channel rankings of one layer, computed on first use (collective, so every rank of the group
// reaches the same first use: the plan is the same on every rank).
struct LayerRankings {
  std::optional<std::vector<int64_t>> heads, channels;
  ObsCache obs;  // sparsegpt / gptq factors of the layer's inputs
};

// What the validation guaranteed for the model at hand; a mismatch is a bug of the caller, not a bad input.
void expect_validated_for(const ValidatedPlan& plan, const ModelConfig& config, const ShardLayout& layout) {
  EXPECTS(static_cast<int64_t>(plan.plan().layers.size()) == config.num_layers,
          "the plan was validated for a model with another layer count");
  EXPECTS(plan.tp() == layout.shard.size, "the plan was validated for another tensor-parallel size");
}

HostMatrix compress_with(const CompressionPlan& plan, const ModelConfig& config, const HostWeights& pristine,
                         int64_t l, Component c, Communicator& comm, LayerRankings& rankings,
                         const CalibrationStats* calibration) {
  const HostLayer& layer = pristine.layers[static_cast<size_t>(l)];
  HostMatrix m = layer.linear[c];
  const ComponentPlan& cp = plan.at(l, c);
  if (cp.is_identity()) return m;
  const ShardGeometry g = shard_geometry(c, config, pristine.layout);
  if (cp.prune && cp.prune->sparsity > 0.0) {
    const double s = cp.prune->sparsity;
    if (is_calibrated(cp.prune->method)) {
      EXPECTS(calibration != nullptr, "a calibrated prune needs calibration statistics");
      apply_calibrated_prune(m, g, *cp.prune, calibration->for_component(l, c), rankings.obs, comm);
    }
    switch (cp.prune->method) {
      case PruneMethod::Magnitude: prune_magnitude(m, g, s, comm); break;
      case PruneMethod::MagnitudeRow: prune_magnitude_rows(m, g, s, comm); break;
      case PruneMethod::TwoFour: prune_two_four(m, g); break;
      case PruneMethod::Heads: {
        if (!rankings.heads) rankings.heads = rank_kv_heads(layer, config, pristine.layout, comm);
        const int64_t count = pruned_kv_heads(s, config);
        zero_kv_heads(m, c, std::span<const int64_t>(rankings.heads->data(), static_cast<size_t>(count)), config,
                      pristine.layout);
        break;
      }
      case PruneMethod::Channels: {
        if (!rankings.channels) rankings.channels = rank_channels(layer, config, pristine.layout, comm);
        const int64_t count = pruned_channels(s, config);
        zero_channels(m, c, std::span<const int64_t>(rankings.channels->data(), static_cast<size_t>(count)),
                      pristine.layout);
        break;
      }
      case PruneMethod::Wanda:
      case PruneMethod::SparseGpt: break;  // above
    }
  }
  if (cp.quant == QuantMethod::Int8) quantize_int8_rows(m, g, comm);
  if (has_grid(cp.quant)) {
    EXPECTS(calibration != nullptr || !is_calibrated(cp.quant), "gptq needs calibration statistics");
    static const InputStats kNone;
    apply_calibrated_quant(m, g, cp, calibration ? calibration->for_component(l, c) : kNone, rankings.obs, comm);
  }
  return m;
}

}  // namespace

HostMatrix compress_linear(const ValidatedPlan& plan, const ModelConfig& config, const HostWeights& pristine,
                           int64_t layer, Component component, Communicator& comm,
                           const CalibrationStats* calibration) {
  expect_validated_for(plan, config, pristine.layout);
  LayerRankings rankings;
  return compress_with(plan.plan(), config, pristine, layer, component, comm, rankings, calibration);
}

namespace {

void expect_model_matches(const CompressionPlan& plan, const HostWeights& pristine, LlamaModel& model) {
  const ModelConfig& config = model.config();
  EXPECTS(model.weights().layers.size() == pristine.layers.size() &&
              static_cast<int64_t>(pristine.layers.size()) == config.num_layers &&
              plan.layers.size() == pristine.layers.size(),
          "working copy, pristine weights and config disagree on the layer count");
  EXPECTS(model.layout().shard.rank == pristine.layout.shard.rank && model.layout().shard.size == pristine.layout.shard.size,
          "the pristine weights are another shard than the model's");
}

// Uploads layer l of the working copy: compressed under `plan`, or pristine where the plan leaves it untouched.
void apply_layer(const CompressionPlan& plan, const HostWeights& pristine, LlamaModel& model, int64_t l,
                 const CalibrationStats* calibration) {
  const LayerPlan& lp = plan.layers[static_cast<size_t>(l)];
  DeviceLayer& dev = model.weights().layers[static_cast<size_t>(l)];
  dev.removed = lp.removed;
  LayerRankings rankings;
  for (Component c : kAllComponents) {
    const HostMatrix& original = pristine.layers[static_cast<size_t>(l)].linear[c];
    if (lp.removed || plan.at(l, c).is_identity()) {
      upload_linear(model.backend(), original, dev.linear[c]);
    } else {
      upload_linear(model.backend(),
                    compress_with(plan, model.config(), pristine, l, c, model.comm(), rankings, calibration),
                    dev.linear[c]);
    }
  }
}

}  // namespace

void apply_plan(const ValidatedPlan& validated, const HostWeights& pristine, LlamaModel& model,
                const CalibrationStats* calibration) {
  expect_validated_for(validated, model.config(), pristine.layout);
  expect_model_matches(validated.plan(), pristine, model);
  for (int64_t l = 0; l < model.config().num_layers; ++l) apply_layer(validated.plan(), pristine, model, l, calibration);
}

void apply_plan_sequential(const ValidatedPlan& validated, const HostWeights& pristine, LlamaModel& model,
                           const std::vector<std::vector<int32_t>>& sequences) {
  const CompressionPlan& plan = validated.plan();
  expect_validated_for(validated, model.config(), pristine.layout);
  expect_model_matches(plan, pristine, model);
  const int64_t L = model.config().num_layers;
  const CompressionPlan identity = CompressionPlan::identity(L);
  for (int64_t l = 0; l < L; ++l) apply_layer(identity, pristine, model, l, nullptr);
  for (int64_t l = 0; l < L; ++l) {
    // Layers < l are compressed, l and above pristine: layer l's inputs as the compressed model computes them.
    const CalibrationStats stats = collect_calibration(model, sequences, l);
    apply_layer(plan, pristine, model, l, &stats);
  }
}

ValidatedPlan load_replica_plan(const std::filesystem::path& file, const ModelReplica& replica) {
  std::optional<ValidatedPlan> plan;
  collective_step(MPI_COMM_WORLD, [&] { plan = load_plan(file, replica.config(), replica.pristine().layout.shard.size); });
  return std::move(*plan);
}

}  // namespace divprune

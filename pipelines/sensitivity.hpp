#pragma once
// The `sensitivity` stage's configuration section and the plans of its sweep (pipelines/sensitivity.cpp; keys in
// configs/README.md, archive layout in src/archive/SCHEMA.md "/sensitivity").
#include <cstdint>
#include <vector>

#include "compress/plan.hpp"
#include "pipelines/run_config.hpp"

namespace divprune {

struct SensitivitySettings {
  std::vector<double> steps = {0.25, 0.5, 0.75};  // strictly increasing, in (0, 1)
  PruneMethod method = PruneMethod::Magnitude;    // magnitude or magnitude_row: they apply at any step
  std::vector<Component> components = {kAllComponents.begin(), kAllComponents.end()};
  std::vector<int64_t> layers;                    // every layer when the file gives none
  bool int8 = true;                               // each component alone in int8
  bool remove_layers = true;                      // each layer removed
  double fdt_threshold = 0.5;                     // diverged: mean FDT < fdt_threshold * N
};

// Reads and validates the `sensitivity` section for `model` (InputError naming the file and key). The stage
// ranks by FDT, so the configuration must declare prompts.
SensitivitySettings read_sensitivity_settings(const RunConfig& config, const ModelConfig& model);

// The sweep's plans in the order of the archive's tables: pruning (layer, component, step), then int8
// (layer, component), then removal (layer).
std::vector<PlanEntry> sweep_entries(const SensitivitySettings& settings, const ModelConfig& model);

}  // namespace divprune

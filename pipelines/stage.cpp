#include "pipelines/stage.hpp"

namespace divprune {

const std::map<std::string, StageFunction>& stage_registry() {
  static const std::map<std::string, StageFunction> registry = {
      {"baseline", run_baseline_stage},
      {"baselines", run_baselines_stage},
      {"evaluate", run_evaluate_stage},
      {"sample", run_sample_stage},
      {"train", run_train_stage},
      {"search", run_search_stage},
      {"sensitivity", run_sensitivity_stage},
      {"heldout", run_heldout_stage},
      {"heal", run_heal_stage},
  };
  return registry;
}

}  // namespace divprune

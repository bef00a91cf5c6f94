#pragma once
// The `heal` stage's configuration (section `heal`, configs/README.md): which plans to heal, on which text, with
// which training settings (src/train: LayerChop's continued pretraining of a compressed model).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "pipelines/run_config.hpp"
#include "train/trainer.hpp"

namespace divprune {

struct HealSettings {
  std::vector<PlanEntry> plans;        // heal.plans entries that are plans (files, `base`, inline)
  std::vector<std::string> plan_ids;   // heal.plans entries {id: <plan id>}: plans already under /plans
  std::vector<std::string> plan_id_names;  // their names (default: the id)
  bool from_search_best = false;       // heal.from: search_best (/search/best)
  bool from_pareto = false;            // heal.from: pareto (/search/pareto)
  std::filesystem::path text;          // training text (never data.perplexity.text)
  int64_t max_text_tokens = 0;         // 0: the whole file
  int64_t heldout_tokens = 1024;       // the text's last tokens, not trained on: held-out loss before/after
  int64_t tokens = 0;                  // training budget in target tokens (sets steps) when > 0
  int64_t checkpoint_every = 10;       // steps between checkpoints (and one after the last step)
  train::TrainSettings train;          // steps, batch, seq_len, lr, min_lr, warmup, weight_decay, clip, seed
};

// InputError naming the key on bad values, a missing text, and a training text that is the evaluation text.
HealSettings read_heal_settings(const RunConfig& config);

// The canonical text of the training settings that, with the plan and the training tokens, identify a healed
// model (part of its hash). `grad_groups` is the effective value (it changes float rounding).
std::string heal_settings_yaml(const HealSettings& settings, int64_t grad_groups);

}  // namespace divprune

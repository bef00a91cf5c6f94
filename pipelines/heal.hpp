#pragma once
// The `heal` stage's configuration (section `heal`, configs/README.md): which plans to heal, on which text, with
// which training settings (src/train: LayerChop's continued pretraining of a compressed model).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/weights.hpp"
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

// The inverse of heal_settings_yaml (what /heal/<id> keeps as settings_yaml): InputError naming `where` when a key
// is missing or the settings do not print back to `yaml` exactly. train.grad_groups is the recorded value.
HealSettings heal_settings_from_yaml(const std::string& yaml, const std::string& where);

// The training text of a heal, tokenised (the perplexity protocol's tokenisation, no BOS): its last heldout_tokens
// are held out (not trained on); sha256 is that of the training token ids (int32 little-endian), part of the id.
struct HealText {
  std::vector<int32_t> train, heldout;
  std::string sha256;
};
HealText split_heal_text(std::vector<int32_t> stream, int64_t heldout_tokens);

// The healed model's hash (its plan id is plan_id_from_hash of it): parent's canonical plan YAML, canonical
// settings, training tokens.
std::string healed_plan_hash(const std::string& parent_yaml, const std::string& settings_yaml,
                             const std::string& text_sha256);

// Mean NLL per target token of `tokens` in windows of seq_len (each fed after BOS), by the training forward
// (NaN when `tokens` is empty): the held-out loss of /heal.
double mean_window_loss(const ModelConfig& config, const HostWeights& weights, const std::vector<bool>& removed,
                        const std::vector<int32_t>& tokens, int64_t seq_len);

}  // namespace divprune

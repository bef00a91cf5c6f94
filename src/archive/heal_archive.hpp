#pragma once
// Typed reader and writer of /heal (src/archive/SCHEMA.md "/heal"): one group per healed plan, written by the
// heal stage (pipelines/heal.cpp) after the healed model's evaluation is archived as its own /plans/<id>. It links
// the healed plan to the plan it was trained from and keeps the training settings and the loss curve.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.hpp"

namespace divprune {

struct HealRecord {
  std::string id;              // the healed plan's id (/plans/<id>, /heal/<id>)
  std::string parent_id;       // the plan it was healed from (/plans/<parent_id>)
  std::string name;            // the healed plan's name
  std::string settings_yaml;   // the training settings (canonical, the part of the id that is not the plan)
  std::string text;            // training text file
  std::string text_sha256;     // sha256 of the training token ids (int32 little-endian)
  int64_t text_tokens = 0;     // tokens trained on (the held-out tail excluded)
  int64_t heldout_tokens = 0;  // tokens of the text's held-out tail (not trained on)
  double heldout_loss_parent = 0.0;  // mean NLL per token of the held-out tail, parent plan (NaN: no tail)
  double heldout_loss_healed = 0.0;  // the same for the healed model
  double seconds = 0.0;              // training time of the run(s) that trained it (resumed runs add up)
  double tokens_per_second = 0.0;    // trained target tokens / training seconds
  // The loss curve, one entry per optimizer step.
  std::vector<double> loss, grad_norm, lr;
  std::vector<int64_t> tokens;
};

// Writes /heal/<id> in one transaction, `complete` last (an older group of the id is replaced).
void write_heal_record(const RunArchive& archive, const HealRecord& record);
// std::nullopt when missing or incomplete.
std::optional<HealRecord> read_heal_record(const RunArchive& archive, const std::string& id);
// Ids of the complete /heal groups.
std::vector<std::string> heal_record_ids(const RunArchive& archive);

}  // namespace divprune

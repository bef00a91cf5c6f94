#pragma once
// --calibration TEXT of the commands that apply a plan (logits, perplexity): the calibration statistics the
// calibrated operators (wanda, sparsegpt, gptq) need, collected in cached mode from the base model before the
// plan is applied (compress/calibration.hpp).
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "parallel/replica.hpp"

namespace divprune {

struct CalibrationOption {
  std::string text;        // empty: none given
  int64_t sequences = 128;
  int64_t length = 0;      // 0: the model's context, at most 2048 tokens
  uint64_t seed = 0;
  std::string mode = "cached";  // cached | sequential (compress/apply.hpp apply_plan_sequential)
  // Adds --calibration-mode and --calibration, --calibration-sequences, --calibration-length, --calibration-seed.
  void add_to(CLI::App& sub);
};

// --plan FILE with its calibration: the plan is read and validated for the replica (collective), statistics are
// collected when it needs them (an InputError, exit 2, when --calibration or the tokenizer is missing or the text
// is shorter than one sequence), then it is applied and its size and times are logged by the coordinator.
void apply_plan_with_calibration(const std::string& plan_file, const CalibrationOption& calibration,
                                 const std::string& tokenizer, ModelReplica& replica);

}  // namespace divprune

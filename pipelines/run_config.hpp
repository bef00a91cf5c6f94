#pragma once
// The configuration of `divprune run CONFIG.yaml [--set key=value ...]` (every key: configs/README.md).
//
// Paths: relative paths are resolved against the directory of the configuration file (so a config works
// from any working directory); `${assets}` inside a path is replaced by the `assets` key (itself resolved the
// same way). --set values follow the same rules; give absolute paths on the command line to avoid surprises.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/yaml_config.hpp"
#include "metrics/base_logprobs.hpp"
#include "metrics/eval_data.hpp"

namespace divprune {

// One entry of evaluate.plans, before it is parsed against the model (compress/plan.hpp).
struct PlanEntry {
  std::string name;
  std::string source;   // the plan file, "inline" or "builtin"
  std::string yaml;     // the plan's YAML text
  std::string where;    // the config key, for messages ("evaluate.plans[2]")
};

struct RunConfig {
  std::filesystem::path file;          // the configuration file
  std::string yaml;                    // the whole configuration after --set overrides (archived at the root)
  ConfigNode root;                     // the same tree; stages read their own sections from it

  std::filesystem::path model;
  std::filesystem::path tokenizer;
  std::filesystem::path archive;
  std::vector<std::string> stages;

  // data.perplexity
  std::filesystem::path ppl_text;
  int64_t ctx = 256;
  int64_t max_chunks = 0;              // 0: every chunk
  // data.logprobs
  LogprobMode logprob_mode = LogprobMode::Full;
  int64_t top_k = 64;
  int64_t max_logprob_tokens = 4096;   // -1: no cap
  // data.prompts
  std::filesystem::path prompts_file;
  std::filesystem::path prompts_text;
  int64_t prompt_count = 8;
  int64_t prompt_tokens = 32;
  int64_t continuation = 32;
  // data.multiple_choice
  std::filesystem::path mc_file;
  std::filesystem::path mc_build_text;
  NextSentenceOptions mc_build;
  std::string mc_build_kind = "next_sentence";  // next_sentence | cloze (metrics/cloze_task.hpp)
  int64_t mc_max_items = 0;            // 0: every item of the file

  // calibration (issue 16): the statistics of the calibrated operators (wanda, sparsegpt, gptq), configs/README.md
  std::filesystem::path calibration_text;  // empty: no calibration section (calibrated plans are refused)
  int64_t calibration_sequences = 128;
  int64_t calibration_length = 0;          // 0: the model's context, at most 2048 tokens
  uint64_t calibration_seed = 0;
  std::string calibration_mode = "cached"; // cached | sequential (compress/calibration.hpp)

  // evaluate
  std::vector<PlanEntry> plans;
  bool store_per_token = true;
  // evaluate.part / evaluate.parts: this invocation evaluates only entries part, part + parts, ... (a job array's
  // share; its archives are combined by `divprune merge`). parts = 1: every entry.
  int64_t plan_part = 0;
  int64_t plan_parts = 1;
};

// One plan entry of a list like evaluate.plans (a plan file, `base`, or {name, file | plan}); `index` names inline
// plans ("plan<index>"). InputError naming the key.
PlanEntry parse_plan_entry(const ConfigNode& node, size_t index);

// Reads, applies `overrides` ("dotted.key=value", value parsed as YAML) and validates. Throws InputError naming
// the file and key.
RunConfig load_run_config(const std::filesystem::path& file, const std::vector<std::string>& overrides);
// Same from text (`file` names it and anchors relative paths).
RunConfig parse_run_config(const std::string& text, const std::filesystem::path& file,
                           const std::vector<std::string>& overrides);

// Sets a dotted key of a YAML tree (maps are created as needed; numeric parts index sequences).
void set_dotted(YAML::Node& root, const std::string& key, const YAML::Node& value, const std::string& where);

}  // namespace divprune

#pragma once
// Merging the worker archives of a job array (divprune merge): each task evaluated its share of the plans into
// its own archive, all from the same model and baseline; the merged archive holds that baseline once and every
// complete plan of every input.
#include <filesystem>
#include <string>
#include <vector>

namespace divprune {

struct MergeResult {
  int64_t plans = 0;        // plans in the merged archive
  int64_t duplicates = 0;   // complete plans found in more than one input (identical, kept once)
  std::vector<std::string> skipped;  // "FILE: plan ID" of incomplete plans left out
  std::vector<std::string> dropped;  // "FILE: /GROUP" of groups other than /runs, /data, /baseline, /plans left out
};

// Writes `out` (which must not exist) from `inputs`. InputError (one line naming the file and what differs,
// expected vs found) when an input is no archive, lacks a complete baseline, has another schema, model,
// evaluation data or baseline than the first input, or holds a plan of the same id with other metrics.
// /runs of every input are kept, renumbered in input order (each with the attribute merged_from), and each
// plan's run_index follows its run.
MergeResult merge_archives(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& out);

}  // namespace divprune

#pragma once
// Typed readers and writers of /heldout (src/archive/SCHEMA.md "/heldout"): the held-out confirmation of a
// search (pipelines/heldout.cpp). /heldout/data, /heldout/baseline and /heldout/plans have the layout of /data,
// /baseline and /plans and are written through a RunArchive rooted at "heldout" (heldout_archive()); this file
// writes the stage's outcome, /heldout/candidates and /heldout/comparisons, and reads the per-unit arrays of a
// plan that the paired bootstrap (metrics/bootstrap.hpp) resamples.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.hpp"

namespace divprune {

inline constexpr const char* kHeldoutRoot = "heldout";
// The sub-archive of the held-out evaluation in the same file (RunArchive rooted at /heldout).
inline RunArchive heldout_archive(const RunArchive& archive) { return RunArchive(archive.path(), kHeldoutRoot); }

// Per-unit arrays of a complete plan of `archive` (or of a sub-archive): per prompt fdt, sdt; per token kl (the
// kept tokens) and nll. The token arrays are empty when the plan was stored without them.
struct PlanUnits {
  std::vector<double> fdt, sdt, kl, nll;
};
PlanUnits read_plan_units(const RunArchive& archive, const std::string& id);

// /heldout/candidates: the plans re-measured on the held-out data, one row per (role, plan) (a plan can have
// several roles, e.g. the best random sample that is also in the search's top k).
struct HeldoutCandidates {
  std::string objective;              // train.objective
  int64_t top_k = 0;                  // heldout.candidates
  std::string best_id;                // the searched candidate best on the held-out data
  std::vector<std::string> roles;     // "search_1" .. "search_k" (selection rank), "uniform", "best_random", ...
  std::vector<std::string> ids;
  std::vector<std::string> names;
  std::vector<double> sparsity;
  std::vector<double> selection;      // the objective on the evaluation data the search selected on (/plans)
  std::vector<double> heldout;        // the objective on the held-out data (/heldout/plans)
};
// /heldout/comparisons: the held-out best against each reference, paired bootstrap of the objective's
// improvement (positive: the best is better; maximised objective best - reference, minimised reference - best).
struct HeldoutComparisons {
  std::string statistic;              // metrics/bootstrap.hpp paired_statistic_name
  std::string units;                  // "prompts" or "tokens": what was resampled
  int64_t resamples = 0;
  int64_t seed = 0;
  std::vector<std::string> roles;     // the reference's role
  std::vector<std::string> ids;       // the reference plan
  std::vector<double> estimate, lower, upper;  // improvement and its 95% interval
  std::vector<int64_t> n;             // units resampled
};
// Removes /heldout/candidates and /heldout/comparisons (the stage, when it starts) and creates /heldout.
void begin_heldout(const RunArchive& archive);
// Writes both groups in one transaction (`complete` = 1 on each).
void write_heldout_outcome(const RunArchive& archive, const HeldoutCandidates& candidates,
                           const HeldoutComparisons& comparisons);
// std::nullopt when missing or incomplete.
std::optional<HeldoutCandidates> read_heldout_candidates(const RunArchive& archive);
std::optional<HeldoutComparisons> read_heldout_comparisons(const RunArchive& archive);

}  // namespace divprune

#pragma once
// The stages `divprune run` executes (DESIGN: "Shape of a run"), and what they share: the configuration, the
// topology, this rank's model replica and the archive (written by the coordinator only).
//
// A stage is a function run on every rank. It reads its inputs from the archive on the coordinator and
// broadcasts them (parallel/world.hpp), spreads its work over replicas (parallel/work_queue.hpp) and each
// replica's workers (parallel/worker_pool.hpp, metrics/eval_units.hpp), and the coordinator archives results
// as they arrive. Stages make no MPI calls of their own. Add a stage by writing pipelines/<name>.cpp and listing it in stage_registry().
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "archive/archive.hpp"
#include "parallel/world.hpp"
#include "parallel/replica.hpp"
#include "parallel/topology.hpp"
#include "parallel/work_queue.hpp"
#include "pipelines/run_config.hpp"

namespace divprune {

class RunCalibration;  // pipelines/run_calibration.hpp

struct StageContext {
  const RunConfig& config;
  const Topology& topology;
  ModelReplica& replica;
  RunArchive& archive;
  int64_t run_index = 0;   // this invocation's index in /runs
  // The run's calibration (cached statistics kept across stages), created on first use: run_calibration().
  std::shared_ptr<RunCalibration> calibration = nullptr;
};

using StageFunction = std::function<void(StageContext&)>;
// Stage name -> function, in no particular order (the configuration's `stages` list gives the order).
const std::map<std::string, StageFunction>& stage_registry();

void run_baseline_stage(StageContext& context);
void run_evaluate_stage(StageContext& context);
void run_sample_stage(StageContext& context);
void run_train_stage(StageContext& context);
void run_search_stage(StageContext& context);
void run_sensitivity_stage(StageContext& context);
void run_heldout_stage(StageContext& context);  // pipelines/heldout.cpp
void run_baselines_stage(StageContext& context);  // pipelines/baselines.cpp
void run_heal_stage(StageContext& context);     // pipelines/heal.cpp

// Plans measured with other weights than the plan applied to the pristine ones (the heal stage's healed
// models): entry i is archived under hashes[i] (its id the first 16 hex digits) instead of the hash of its plan,
// and install(replica, i) puts its whole working copy into the replica's model (collective over the replica's tp
// group, like apply_plan) in place of apply_plan.
struct PlanWeightsOverride {
  std::vector<std::string> hashes;
  std::function<void(ModelReplica&, size_t entry)> install;
};

// Evaluates `entries` like the evaluate stage (collective; plans complete in the archive are skipped, so a
// rerun resumes) and returns each entry's plan id (in order). `stage` prefixes the log lines.
std::vector<std::string> evaluate_plan_entries(StageContext& context, const std::vector<PlanEntry>& entries,
                                               const std::string& stage, bool print_table,
                                               const PlanWeightsOverride* override_weights = nullptr);

}  // namespace divprune

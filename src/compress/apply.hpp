#pragma once
// The hook the CLI commands (divprune logits / perplexity --plan FILE) call after building their replica.
#include <filesystem>

#include "compress/plan.hpp"

namespace divprune {

class ModelReplica;

// Reads `plan_yaml`, checks it against the replica's model and tensor-parallel layout, and builds the working
// copy of the plan from the pristine weights (compress/operators.hpp: apply_plan). Collective over
// MPI_COMM_WORLD: every rank calls it with the same file; a bad plan makes every rank throw the same
// CollectiveError (exit code 2). Logs the plan's size on the coordinator. Returns the plan.
CompressionPlan apply_plan_file(const std::filesystem::path& plan_yaml, ModelReplica& replica);

// Same with a plan already in memory (validated here, collectively).
void apply_plan(const CompressionPlan& plan, ModelReplica& replica);

}  // namespace divprune

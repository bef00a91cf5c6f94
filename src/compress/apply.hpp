#pragma once
// A plan applied: the compressed local shard of one projection, and the working copy of a whole model
// (DESIGN: "pristine weights stay"). Only validated plans are applied (compress/plan.hpp: ValidatedPlan): a
// plan is checked once, where it enters the program, so applying it has nothing left to reject and cannot fail
// on one rank of a group while the others wait in a collective.
//
// Every function taking a Communicator (or a model, whose comm() is its tensor-parallel group) is collective
// over that group only: all ranks of the group call it with the same plan, in the same order, and other
// replicas may apply other plans at the same time.
#include <cstdint>
#include <filesystem>
#include <vector>

#include "compress/calibration.hpp"
#include "compress/plan.hpp"
#include "model/weights.hpp"
#include "core/communicator.hpp"

namespace divprune {

class LlamaModel;
class ModelReplica;

// The compressed local shard of one projection under `plan` (a copy of the pristine one when the plan leaves
// it untouched). Operators: compress/operators.hpp, compress/calibrated_operators.hpp; `calibration` holds the
// statistics the calibrated ones need (required when the plan uses one; compress/calibration.hpp).
HostMatrix compress_linear(const ValidatedPlan& plan, const ModelConfig& config, const HostWeights& pristine,
                           int64_t layer, Component component, Communicator& comm,
                           const CalibrationStats* calibration = nullptr);

// Builds `model`'s working copy of `plan` from `pristine`, this rank's shard of the uncompressed weights: every
// linear projection of every layer is re-uploaded, from its compressed values or from the pristine ones, and
// DeviceLayer::removed is set, so applying plan A then plan B leaves exactly what applying B to freshly uploaded
// weights leaves. Norms and embeddings are never compressed and are left as they are. The plan must have been
// validated for the model's config and tensor-parallel size (a precondition, not an input check).
void apply_plan(const ValidatedPlan& plan, const HostWeights& pristine, LlamaModel& model,
                const CalibrationStats* calibration = nullptr);

// Sequential calibration (the papers' procedure): layer by layer, the statistics of layer l are collected over
// `sequences` with layers 0..l-1 already compressed (layer l itself pristine), then layer l is compressed with
// them. Costs one forward pass over the calibration sequences per layer (cached mode: one in all). Same result
// as apply_plan for the layers before the first compressed one. Collective like apply_plan.
void apply_plan_sequential(const ValidatedPlan& plan, const HostWeights& pristine, LlamaModel& model,
                           const std::vector<std::vector<int32_t>>& sequences);

// A plan file for `replica` (divprune logits / perplexity --plan FILE), read and validated for the replica's
// model and tensor-parallel size. Collective over MPI_COMM_WORLD: every rank calls it with the same file; a bad
// plan makes every rank throw the same CollectiveError (exit code 2) naming the file.
ValidatedPlan load_replica_plan(const std::filesystem::path& file, const ModelReplica& replica);

}  // namespace divprune

#pragma once
// A plan's working copy on the host, for the whole model (tp = 1): what `divprune export` writes. apply_plan
// (compress/apply.hpp) builds the same values on a backend; this keeps them as HostWeights so they can be written
// out. Pruned entries are zeros, int8 components hold their dequantized values (scale · q, fp32), removed layers
// are flagged (their weights are left as they were: an export leaves them out).
#include <vector>

#include "compress/plan.hpp"
#include "model/weights.hpp"

namespace divprune {

struct HostWorkingCopy {
  HostWeights weights;
  std::vector<bool> removed;  // (L) the plan's dropped layers
};

// Consumes `pristine` (one copy of the model in memory, not two): each layer's seven projections are compressed
// from its pristine values, then replace them. `plan` must have been validated for `config` and tp = 1.
HostWorkingCopy host_working_copy(const ValidatedPlan& plan, const ModelConfig& config, HostWeights pristine);

}  // namespace divprune

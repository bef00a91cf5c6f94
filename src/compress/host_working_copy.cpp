#include "compress/host_working_copy.hpp"

#include <array>

#include "compress/apply.hpp"
#include "core/communicator.hpp"
#include "core/errors.hpp"

namespace divprune {

HostWorkingCopy host_working_copy(const ValidatedPlan& validated, const ModelConfig& config, HostWeights pristine) {
  EXPECTS(pristine.layout.shard.size == 1 && validated.tp() == 1, "a host working copy is of the whole model (tp = 1)");
  const CompressionPlan& plan = validated.plan();
  EXPECTS(plan.layers.size() == pristine.layers.size(), "plan and weights disagree on the layer count");
  SoloCommunicator solo;  // tp = 1: every collective of the operators is the identity
  HostWorkingCopy copy;
  copy.removed.resize(plan.layers.size());
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    copy.removed[l] = plan.layers[l].removed;
    if (plan.layers[l].removed) continue;
    // All seven from the untouched layer first: head and channel rankings read several projections of it.
    std::array<HostMatrix, kNumComponents> compressed;
    bool any = false;
    for (Component c : kAllComponents) {
      if (plan.at(static_cast<int64_t>(l), c).is_identity()) continue;
      compressed[static_cast<size_t>(c)] = compress_linear(validated, config, pristine,
                                                           static_cast<int64_t>(l), c, solo);
      any = true;
    }
    if (!any) continue;
    for (Component c : kAllComponents)
      if (!plan.at(static_cast<int64_t>(l), c).is_identity())
        pristine.layers[l].linear[c] = std::move(compressed[static_cast<size_t>(c)]);
  }
  copy.weights = std::move(pristine);
  return copy;
}

}  // namespace divprune

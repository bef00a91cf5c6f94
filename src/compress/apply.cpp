#include "compress/apply.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "compress/operators.hpp"
#include "parallel/replica.hpp"
#include "parallel/topology.hpp"

namespace divprune {

void apply_plan(const CompressionPlan& plan, ModelReplica& replica) {
  collective_step(MPI_COMM_WORLD, [&] {
    validate_plan(plan, replica.config(), "compression plan");
    validate_plan_for_layout(plan, replica.config(), replica.pristine().layout, "compression plan");
  });
  const auto start = std::chrono::steady_clock::now();
  LlamaModel& model = replica.model();
  apply_plan(plan, replica.config(), replica.pristine(), replica.backend(), model.weights(), model.comm());
  if (replica.topology().is_coordinator()) {
    const PlanSize size = plan_size(plan, replica.config());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("applied plan: {} of {} layers removed, linear sparsity {:.4f}, {} int8 linear entries, {} parameters "
                 "left of {} ({:.2f} s)",
                 plan.dropped_layers().size(), plan.layers.size(), size.sparsity, size.linear_int8, size.parameters,
                 replica.config().parameter_count(), seconds);
  }
}

CompressionPlan apply_plan_file(const std::filesystem::path& plan_yaml, ModelReplica& replica) {
  CompressionPlan plan;
  collective_step(MPI_COMM_WORLD, [&] {
    plan = load_plan(plan_yaml, replica.config());
    validate_plan_for_layout(plan, replica.config(), replica.pristine().layout, plan_yaml.string());
  });
  apply_plan(plan, replica);
  return plan;
}

}  // namespace divprune

#include "cli/command.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "compress/apply.hpp"
#include "core/enum_names.hpp"
#include "core/errors.hpp"

namespace divprune {

void add_execution_options(CLI::App& sub, ExecutionOptions& exec) {
  sub.add_option("--tp", exec.tp, "Tensor-parallel ranks per model replica; world size must be a multiple")
      ->capture_default_str();
  sub.add_option("--backend", exec.backend, "Compute backend: cpu (fp32 reference) or cuda (bf16)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub.add_option("--threads", exec.threads,
                 fmt::format("BLAS threads (or CPU workers) per rank, 0 to {} (0: the node's cores shared among its "
                             "ranks)",
                             kMaxThreads))
      ->check(CLI::Range(0, kMaxThreads))
      ->capture_default_str();
  sub.add_flag("-v,--verbose", [&exec](int64_t count) { exec.verbosity = 1 + static_cast<int>(count); },
               "More log output (repeat for debug)");
  sub.add_flag("-q,--quiet", [&exec](int64_t) { exec.verbosity = 0; }, "Only warnings and errors on stderr");
}

BackendKind parse_backend(const std::string& name) {
  static constexpr auto kBackendNames =
      enum_names<BackendKind>("backend", {{BackendKind::Cpu, "cpu"}, {BackendKind::Cuda, "cuda"}});
  return kBackendNames.parse(name, "--backend");
}

ReplicaOptions replica_options(const std::string& model, const ExecutionOptions& exec) {
  ReplicaOptions options;
  options.model = model;
  options.backend = parse_backend(exec.backend);
  options.threads = exec.threads;
  return options;
}

void apply_plan_option(const std::string& file, ModelReplica& replica) {
  const ValidatedPlan plan = load_replica_plan(file, replica);
  const auto start = std::chrono::steady_clock::now();
  apply_plan(plan, replica.pristine(), replica.model());
  if (replica.topology().is_coordinator()) {
    const PlanSize size = plan_size(plan.plan(), replica.config());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("applied plan: {} of {} layers removed, linear sparsity {:.4f}, {} int8 linear entries, {} parameters "
                 "left of {} ({:.2f} s)",
                 plan.plan().dropped_layers().size(), plan.plan().layers.size(), size.sparsity, size.linear_int8,
                 size.parameters, replica.config().parameter_count(), seconds);
  }
}

}  // namespace divprune

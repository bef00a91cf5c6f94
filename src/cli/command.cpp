#include "cli/command.hpp"

#include <fmt/format.h>

#include "core/enum_names.hpp"
#include "core/errors.hpp"

namespace divprune {

void add_execution_options(CLI::App& sub, ExecutionOptions& exec) {
  sub.add_option("--tp", exec.tp, "Tensor-parallel ranks per model replica; world size must be a multiple")
      ->capture_default_str();
  sub.add_option("--backend", exec.backend, "Compute backend: cpu (fp32 reference) or cuda (bf16)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  sub.add_option("--threads", exec.threads, "BLAS threads per rank (0: the node's cores shared among its ranks)")
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

}  // namespace divprune

#pragma once
// A CLI subcommand: registers its options on a CLI11 sub-app and runs on every rank. Results go to stdout
// from the coordinator only; progress and diagnostics go to stderr through spdlog.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "kernels/backend.hpp"
#include "parallel/replica.hpp"
#include "parallel/topology.hpp"

namespace divprune {

// The most --threads accepted: each thread may get its own model workspace, and far more threads than any node has
// cores only exhaust memory or the thread limit after the work is done (issue 14).
inline constexpr int kMaxThreads = 1024;

struct ExecutionOptions {
  int tp = 1;
  std::string backend = "cpu";
  int threads = 0;
  int verbosity = 1;
};

class Command {
 public:
  virtual ~Command() = default;
  // Adds the subcommand's own options.
  virtual void setup(CLI::App& sub) = 0;
  // Returns the process exit code.
  virtual int run(const Topology& topology, const ExecutionOptions& exec) = 0;
};

// Adds --tp, --backend, --threads, -v/-q to a subcommand that runs a model.
void add_execution_options(CLI::App& sub, ExecutionOptions& exec);
BackendKind parse_backend(const std::string& name);
ReplicaOptions replica_options(const std::string& model, const ExecutionOptions& exec);
// --plan FILE of the commands that run a model: read and validated for the replica (collective: a bad plan fails
// every rank alike), applied to its working copy, and its size logged by the coordinator.
void apply_plan_option(const std::string& file, ModelReplica& replica);

// Prints what `divprune info` prints (stdout).
void print_checkpoint_info(const Checkpoint& checkpoint, const std::string& model);

std::unique_ptr<Command> make_info_command();
std::unique_ptr<Command> make_generate_command();
std::unique_ptr<Command> make_logits_command();
std::unique_ptr<Command> make_perplexity_command();
std::unique_ptr<Command> make_demo_command();
std::unique_ptr<Command> make_run_command();
std::unique_ptr<Command> make_export_command();
std::unique_ptr<Command> make_merge_command();

}  // namespace divprune

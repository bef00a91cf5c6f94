// divprune: entry point. Initialises MPI, parses the subcommand, runs it on every rank and turns errors into
// exit codes: 2 for bad input (one line naming the file or key), 3 for output I/O failures (core/errors.hpp:
// IoError), 1 for internal failures. An error raised on
// one rank only (outside a collective step) aborts the whole job, so no rank is left hanging.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include "cli/command.hpp"
#include "core/errors.hpp"
#include "core/logging.hpp"

using namespace divprune;

namespace {

void print_error(const std::string& message) { std::fprintf(stderr, "divprune: error: %s\n", message.c_str()); }

// Open MPI keeps what MPI_Init allocates until the process exits, by design. In a sanitizer build those allocations
// are exempt from LeakSanitizer (every other allocation of the process is still checked): attributing them
// with suppressions instead needs full (slow) stack unwinding on every malloc of the process, which made each
// sanitized divprune run about twice as slow.
struct MpiLeaksExempt {
#if defined(__SANITIZE_ADDRESS__)
  __lsan::ScopedDisabler disabler;
#endif
};

int finish(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  const MpiLeaksExempt exempt;
  MPI_Finalize();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Started without mpirun/srun, Open MPI would fork an orted daemon that only MPI_Comm_spawn needs (divprune never
  // spawns): an isolated singleton starts about 0.25 s faster (1 s under the sanitizers), which every command
  // and every CLI test pays. Launched ranks ignore the setting; a value the user exported wins.
  setenv("OMPI_MCA_ess_singleton_isolated", "1", /*overwrite=*/0);
  {
    const MpiLeaksExempt exempt;
    MPI_Init(&argc, &argv);
  }
  int world_rank = 0, world_size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  set_error_rank(world_size > 1 ? world_rank : -1);

  CLI::App app{
      "divprune " DIVPRUNE_VERSION
      ": how much does a compressed Llama-2 still behave like the original?\n"
      "Runs Llama-2 checkpoints (Hugging Face directories or llama2.c .bin files) on CPU ranks or GPUs, under\n"
      "MPI with tensor-parallel replicas (mpirun -np N divprune ... --tp T).",
      "divprune"};
  app.require_subcommand(1);
  app.set_version_flag("--version", DIVPRUNE_VERSION);
  ExecutionOptions exec;
  std::map<CLI::App*, std::unique_ptr<Command>> commands;
  auto add = [&](const char* name, const char* help, std::unique_ptr<Command> command, bool runs_model) {
    CLI::App* sub = app.add_subcommand(name, help);
    command->setup(*sub);
    if (runs_model) add_execution_options(*sub, exec);
    commands.emplace(sub, std::move(command));
  };
  add("info", "Architecture, parameter count, dtype and files of a checkpoint", make_info_command(), false);
  add("generate", "Greedy continuation of a prompt (token ids, then text with --tokenizer)", make_generate_command(), true);
  add("logits", "Logits of the int32 dataset input_ids [batch, seq] of an HDF5 file, written to another", make_logits_command(), true);
  add("perplexity", "Perplexity of a text file (chunks of --ctx tokens, each after BOS)", make_perplexity_command(), true);
  add("run",
      "Run the stages of a YAML configuration (baseline, evaluate, sensitivity, sample, train, search) into one HDF5 "
      "archive; without CONFIG, the demo",
      make_run_command(), true);
  add("export",
      "Write a model (with --plan: its compressed working copy) as a Hugging Face Llama directory (config.json, "
      "safetensors)",
      make_export_command(), false);
  add("merge", "Combine the worker archives of a job array (same model and baseline) into one archive",
      make_merge_command(), false);
  add("demo", "Smoke test without assets: write a synthetic model, show its info, a generation and a perplexity",
      make_demo_command(), true);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (world_rank == 0) app.exit(e);
    return finish(0);
  } catch (const CLI::CallForAllHelp& e) {
    if (world_rank == 0) app.exit(e);
    return finish(0);
  } catch (const CLI::CallForVersion& e) {
    if (world_rank == 0) app.exit(e);
    return finish(0);
  } catch (const CLI::ParseError& e) {
    if (world_rank == 0) print_error(std::string(e.what()) + " (run with --help)");
    return finish(2);
  }

  setup_logging(exec.verbosity, world_rank, world_size);
  Topology topology;
  int code = 0;
  try {
    topology = make_topology(exec.tp);  // identical on every rank: a bad --tp fails everywhere alike
    for (auto& [sub, command] : commands)
      if (sub->parsed()) code = command->run(topology, exec);
  } catch (const CollectiveError& e) {
    if (world_rank == 0) print_error(e.what());
    code = e.exit_code();
  } catch (const InputError& e) {
    if (world_size == 1 || topology.tp_comm == MPI_COMM_NULL) {
      // Raised identically on every rank before any collective (argument checks): print once.
      if (world_rank == 0) print_error(e.what());
      code = 2;
    } else {
      print_error(e.what());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  } catch (const std::exception& e) {
    print_error(e.what());
    code = exit_code_for(e);  // IoError: 3, anything else: 1
    if (world_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  free_topology(topology);
  return finish(code);
}

// divprune merge --out ARCHIVE IN.h5...: combines the worker archives of a job array (each task evaluated its share of
// the plans into its own archive from the same baseline) into one archive (archive/merge_archive.hpp). One process.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "archive/merge_archive.hpp"
#include "cli/command.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {

class MergeCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--out", out_, "Archive to write (must not exist)")->required();
    sub.add_option("inputs", inputs_, "Worker archives (same model and baseline)")->required();
  }

  int run(const Topology& topology, const ExecutionOptions&) override {
    if (topology.world_size > 1)
      throw CollectiveError(fmt::format("merge runs as one process (found {} MPI ranks): run it without mpirun",
                                        topology.world_size),
                            kExitInput);
    std::vector<std::filesystem::path> inputs(inputs_.begin(), inputs_.end());
    const MergeResult r = merge_archives(inputs, out_);
    for (const std::string& s : r.skipped) spdlog::warn("{} is incomplete: left out", s);
    for (const std::string& d : r.dropped) spdlog::warn("{} is not merged (only /runs, /data, /baseline, /plans are)", d);
    spdlog::info("merged {} archives into {}: {} plans ({} found in more than one input, identical), {} incomplete "
                 "left out",
                 inputs.size(), out_, r.plans, r.duplicates, r.skipped.size());
    fmt::print("{}\t{}\n", out_, r.plans);
    return 0;
  }

 private:
  std::string out_;
  std::vector<std::string> inputs_;
};

}  // namespace

std::unique_ptr<Command> make_merge_command() { return std::make_unique<MergeCommand>(); }

}  // namespace divprune

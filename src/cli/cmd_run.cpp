// divprune run [CONFIG.yaml] [--set key=value ...]: runs the stages the configuration lists (pipelines/), writing
// one HDF5 archive (src/archive/SCHEMA.md). Every config key: configs/README.md. Without CONFIG it runs the
// embedded default, configs/demo.yaml of the source tree the binary was built from.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "archive/archive.hpp"
#include "cli/command.hpp"
#include "core/errors.hpp"
#include "pipelines/run_config.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

namespace {

class RunCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("config", config_,
                   "Run configuration (YAML; keys documented in configs/README.md). Default: the embedded demo, " +
                       config_);
    sub.add_option("--set", overrides_, "Override a configuration key: dotted.key=value (value read as YAML); repeatable")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }

  int run(const Topology& topology, const ExecutionOptions& exec) override {
    const auto start = std::chrono::steady_clock::now();
    RunConfig config;
    world_step([&] {
      if (config_ == DIVPRUNE_DEFAULT_CONFIG && topology.is_coordinator())
        spdlog::info("running the default configuration {}", config_);
      config = load_run_config(config_, overrides_);
      for (const std::string& stage : config.stages)
        if (stage_registry().count(stage) == 0) {
          std::string known;
          for (const auto& [name, fn] : stage_registry()) known += (known.empty() ? "" : ", ") + name;
          throw InputError(fmt::format("{}: stages: unknown stage \"{}\" (known: {})", config_, stage, known));
        }
    });
    ModelReplica replica(topology, replica_options(config.model.string(), exec));
    RunArchive archive(config.archive);
    int64_t run_index = 0;
    world_step([&] {
      if (!topology.is_coordinator()) return;
      ArchiveRunInfo info;
      info.config_yaml = config.yaml;
      info.model_path = config.model.string();
      info.model_checksum = model_checksum(replica.checkpoint());
      info.model_config_json = model_config_json(replica.config());
      info.tokenizer_path = config.tokenizer.string();
      info.stages = config.stages;
      info.world_size = topology.world_size;
      info.tp = topology.tp;
      info.replicas = topology.replicas;
      info.backend = exec.backend;
      run_index = archive.begin_run(info);
      spdlog::info("run {} of archive {}: stages {}", run_index, archive.path().string(), fmt::join(config.stages, ", "));
    });
    broadcast_value(run_index);
    StageContext context{config, topology, replica, archive, run_index};
    for (const std::string& stage : config.stages) {
      const auto stage_start = std::chrono::steady_clock::now();
      stage_registry().at(stage)(context);
      if (topology.is_coordinator())
        spdlog::info("stage {} finished in {:.1f} s", stage,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - stage_start).count());
    }
    world_step([&] {
      if (topology.is_coordinator())
        archive.end_run(run_index, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    });
    return 0;
  }

 private:
  std::string config_ = DIVPRUNE_DEFAULT_CONFIG;
  std::vector<std::string> overrides_;
};

}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace divprune

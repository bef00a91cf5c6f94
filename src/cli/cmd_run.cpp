// divprune run [CONFIG.yaml] [--set key=value ...]: runs the stages the configuration lists (pipelines/), writing
// one HDF5 archive (src/archive/SCHEMA.md). Every config key: configs/README.md. Without CONFIG it runs the
// embedded default, configs/demo.yaml of the source tree the binary was built from.
//
// Before it loads the model or opens the archive for writing, every run validates what can be validated without
// the weights (check_config: the configuration, every plan file for the model and tp, the stage sections, the
// input files) and, under the archive lock, that an existing archive can take the run (read-only: a rejected run
// leaves it byte-identical; a fresh path stays uncreated). Only then is the run recorded under /runs.
//
// --check-config: only the first of these checks; opens no archive and reads no weight (slurm/submit.sh runs
// it before sbatch, so a typo fails at submission, not after the queue wait). Exit 0, or 2 with the error.
//
// SIGTERM / SIGUSR1 stop the run between work units (core/stop_signal.hpp): exit kExitInterrupted (75), the
// archive consistent, a rerun resumes it.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "archive/archive.hpp"
#include "archive/archive_lock.hpp"
#include "cli/command.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/stop_signal.hpp"
#include "model/checkpoint.hpp"
#include "parallel/world.hpp"
#include "pipelines/heldout.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/run_config.hpp"
#include "pipelines/search_common.hpp"
#include "pipelines/sensitivity.hpp"
#include "pipelines/heal.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

namespace {

void require_input(const std::filesystem::path& path, const std::string& key, const RunConfig& config) {
  if (!path.empty() && !std::filesystem::exists(path))
    throw InputError(fmt::format("{}: {}: {} does not exist", config.file.string(), key, path.string()));
}
// An input that must be a regular file (text, tokenizer, item file): not a FIFO, folder or device.
void require_input_file(const std::filesystem::path& path, const std::string& key, const RunConfig& config) {
  require_input(path, key, config);
  if (!path.empty()) require_regular_file(path, fmt::format("{} of {}", key, config.file.string()));
}

// Everything a run would reject before its first archive write, without opening the archive or reading a
// weight: the checkpoint is opened for its config only (tensors are mapped lazily, never read here).
void check_config(const RunConfig& config, int tp) {
  require_input(config.model, "model", config);
  require_input_file(config.tokenizer, "tokenizer", config);
  require_input_file(config.ppl_text, "data.perplexity.text", config);
  require_input_file(config.prompts_file, "data.prompts.file", config);
  require_input_file(config.prompts_text, "data.prompts.text", config);
  require_input_file(config.mc_file, "data.multiple_choice.file", config);
  require_input_file(config.mc_build_text, "data.multiple_choice.build.text", config);
  require_input_file(config.calibration_text, "calibration.text", config);
  // The archive is created with its parent folders: the nearest existing ancestor must be a writable folder.
  std::filesystem::path dir = std::filesystem::absolute(config.archive).parent_path();
  while (!dir.empty() && !std::filesystem::exists(dir) && dir != dir.root_path()) dir = dir.parent_path();
  if (!std::filesystem::is_directory(dir) || ::access(dir.c_str(), W_OK) != 0)
    throw InputError(fmt::format("{}: archive: cannot create {} ({} is not a writable folder)", config.file.string(),
                                 config.archive.string(), dir.string()));
  if (std::filesystem::exists(config.archive) && !std::filesystem::is_regular_file(config.archive))
    throw InputError(fmt::format("{}: archive: {} exists and is not a file", config.file.string(), config.archive.string()));
  const ModelConfig model = open_checkpoint(config.model)->config();
  auto has = [&](const char* stage) {
    return std::find(config.stages.begin(), config.stages.end(), stage) != config.stages.end();
  };
  if (has("evaluate") && config.plans.empty())
    throw InputError(fmt::format("{}: the evaluate stage needs evaluate.plans", config.file.string()));
  for (const PlanEntry& e : config.plans) {
    const std::string where = e.source == "inline" ? e.where : e.source;
    const ValidatedPlan plan = parse_plan(e.yaml, model, where, tp);
    if (plan.plan().uses_calibrated_operators() && !calibrated_features(config))
      throw InputError(fmt::format("{}: the plan uses wanda, sparsegpt, gptq or rtn: give the run configuration {} a "
                                   "`calibration:` section (configs/README.md)", where, config.file.string()));
  }
  if (has("sensitivity")) read_sensitivity_settings(config, model);
  if (has("sample") || has("train") || has("search") || has("heldout")) read_search_settings(config, model);
  if (has("heldout")) check_config(read_heldout_settings(config).data, tp);
  if (has("heal"))
    for (const PlanEntry& e : read_heal_settings(config).plans) parse_plan(e.yaml, model, e.source == "inline" ? e.where : e.source, 1);
}

// The coordinator's stop flag, agreed on by every rank (collective over the world).
bool stop_agreed() {
  int32_t stop = world_rank() == 0 && stop_requested() ? 1 : 0;
  broadcast_value(stop);
  return stop != 0;
}

class RunCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("config", config_,
                   "Run configuration (YAML; keys documented in configs/README.md). Default: the embedded demo, " +
                       config_);
    sub.add_option("--set", overrides_, "Override a configuration key: dotted.key=value (value read as YAML); repeatable")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    sub.add_flag("--check-config", check_only_,
                 "Only validate the configuration, its plans and input paths (no archive, no weights); exit 0 or 2");
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
      check_config(config, topology.tp);  // before the model is loaded or the archive touched
    });
    if (check_only_) {
      if (topology.is_coordinator())
        fmt::print("{}: configuration valid (stages {}, {} plan(s), archive {})\n", config_, fmt::join(config.stages, ", "),
                   config.plans.size(), config.archive.string());
      return 0;
    }
    // From here a stop signal ends the run between work units instead of killing it mid-plan.
    install_stop_handlers();
    // One writer per archive: a second job on it stops here, naming the holder (archive/archive_lock.hpp).
    std::optional<ArchiveLock> lock;
    world_step([&] {
      if (!topology.is_coordinator()) return;
      lock.emplace(config.archive);
      // Under the lock, so no other run changes the file between this check and begin_run.
      RunArchive(config.archive).check_resumable(model_checksum(*open_checkpoint(config.model)), config.model.string());
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
      info.feature_names = plan_feature_names(replica.config(), calibrated_features(config));
      run_index = archive.begin_run(info);
      spdlog::info("run {} of archive {}: stages {}", run_index, archive.path().string(), fmt::join(config.stages, ", "));
    });
    broadcast_value(run_index);
    StageContext context{config, topology, replica, archive, run_index};
    try {
      for (size_t i = 0; i < config.stages.size(); ++i) {
        const std::string& stage = config.stages[i];
        // Stages whose work is not spread by the work queue (train, or one with nothing left to do) stop here.
        if (i > 0 && stop_agreed()) throw StopRequested("stop requested between stages");
        const auto stage_start = std::chrono::steady_clock::now();
        stage_registry().at(stage)(context);
        note_progress();  // a finished stage is archived (baseline complete, predictor trained, ...)
        if (topology.is_coordinator())
          spdlog::info("stage {} finished in {:.1f} s", stage,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - stage_start).count());
      }
    } catch (const StopRequested& e) {
      // Every rank throws this at the same point (work queue or stage boundary): no collective is left open,
      // so the ranks can still agree on the coordinator's progress flag. Every archive write opened and closed
      // the file: what is archived is on disk.
      int32_t progress = progress_made() ? 1 : 0;
      broadcast_value(progress);
      const int code = progress ? kExitInterrupted : kExitInterruptedNoProgress;
      if (topology.is_coordinator())
        spdlog::warn("run {} interrupted by signal {} ({}){}; the archive is consistent, rerun to resume (exit {})",
                     run_index, stop_signal_number(), e.what(), progress ? "" : " before it archived anything", code);
      std::fflush(stdout);
      return code;
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
  bool check_only_ = false;
};

}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace divprune

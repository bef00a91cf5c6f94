// divprune export --model M [--plan P] --out DIR: the plan's working copy written as a Hugging Face Llama
// directory (model/hf_export.hpp). One process: the whole model is loaded once in fp32 (tp = 1), compressed on the
// host and written tensor by tensor; peak memory about the fp32 model plus one tensor.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/command.hpp"
#include "compress/host_working_copy.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "model/checkpoint.hpp"
#include "model/hf_export.hpp"
#include "model/shard.hpp"

namespace divprune {

namespace {

class ExportCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory or llama2.c .bin")->required();
    sub.add_option("--plan", plan_, "Compression plan (YAML) whose working copy is written (default: none)");
    sub.add_option("--healed", healed_, "ARCHIVE PLAN_ID: the healed weights of a plan (not yet supported)")
        ->expected(2);
    sub.add_option("--out", out_, "Directory to write (must not exist or be empty, unless --force)")->required();
    sub.add_option("--dtype", dtype_, "fp32, fp16 or bf16 (default: the input's dtype)");
    sub.add_option("--shard-size", shard_size_,
                   "Largest safetensors file, in bytes or with a unit (KB, MB, GB, KiB, MiB, GiB); above it the "
                   "weights are sharded with model.safetensors.index.json")
        ->capture_default_str();
    sub.add_flag("--force", force_, "Replace an existing model directory (one with config.json) at --out");
  }

  int run(const Topology& topology, const ExecutionOptions&) override {
    // Argument checks first, identical on every rank (main prints the error once).
    if (topology.world_size > 1)  // the same on every rank: CollectiveError is printed once, every rank exits 2
      throw CollectiveError(fmt::format("export runs as one process (found {} MPI ranks): run it without mpirun",
                                        topology.world_size),
                            kExitInput);
    if (!healed_.empty())
      throw InputError("--healed: not yet supported (healed weights come with the heal stage of issue 18); "
                       "export --plan exports the plan's working copy");
    HfExportOptions options;
    options.force = force_;
    options.max_shard_bytes = parse_byte_size(shard_size_, "--shard-size");
    if (!plan_.empty()) require_regular_file(plan_, "the plan file");
    check_export_destination(out_, model_, force_);  // before minutes of loading

    const auto start = std::chrono::steady_clock::now();
    const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(model_);
    const ModelConfig& config = checkpoint->config();
    options.dtype = dtype_.empty() ? config.dtype : parse_dtype(dtype_, "--dtype");
    const ValidatedPlan plan = plan_.empty()
                                   ? validate_plan(CompressionPlan::identity(config.num_layers), config, "identity plan", 1)
                                   : load_plan(plan_, config, 1);
    const ShardLayout whole = make_shard_layout(config, TpShard{0, 1});
    HostWorkingCopy copy = host_working_copy(plan, config, load_host_weights(*checkpoint, whole));
    const std::vector<std::string> files =
        export_hf_directory(*checkpoint, model_, copy.weights, copy.removed, out_, options);

    const PlanSize size = plan_size(plan.plan(), config);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("exported {}{} as {} to {}: {} of {} layers kept, linear sparsity {:.4f}, {} files ({:.2f} s)",
                 model_, plan_.empty() ? "" : " with the plan " + plan_, dtype_name(options.dtype), out_,
                 config.num_layers - static_cast<int64_t>(plan.plan().dropped_layers().size()), config.num_layers,
                 size.sparsity, files.size(), seconds);
    for (const std::string& file : files) fmt::print("{}\n", file);
    return 0;
  }

 private:
  std::string model_, plan_, out_, dtype_;
  std::vector<std::string> healed_;
  std::string shard_size_ = "5GB";
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> make_export_command() { return std::make_unique<ExportCommand>(); }

}  // namespace divprune

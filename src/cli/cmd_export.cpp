// divprune export --model M [--plan P | --healed ARCHIVE PLAN_ID --tokenizer T] --out DIR: the plan's working copy
// (or a healed plan's weights) written as a Hugging Face Llama directory (model/hf_export.hpp).
//
// --healed: the heal stage archives a healed plan's record (/heal/<id>: parent plan, settings, training text and
// the sha256 of its tokens, loss curve) but not its weights. Healing is deterministic (bit for bit at any number
// of data-parallel ranks for the same grad_groups, train/heal.hpp), so the weights are rebuilt here: the recorded
// text re-tokenised and checked against the recorded hash, the parent plan trained again with the recorded
// settings on one process, and the rebuilt loss curve checked equal to the archived one before anything is
// written. One process: the whole model is loaded once in fp32 (tp = 1), compressed on the
// host and written tensor by tensor; peak memory about the fp32 model plus one tensor.
#include <cblas.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "cli/command.hpp"
#include "compress/host_working_copy.hpp"
#include "archive/heal_archive.hpp"
#include "compress/plan.hpp"
#include "core/communicator.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "metrics/eval_data.hpp"
#include "model/checkpoint.hpp"
#include "model/hf_export.hpp"
#include "model/shard.hpp"
#include "model/tokenizer.hpp"
#include "pipelines/heal.hpp"
#include "train/heal.hpp"

namespace divprune {

namespace {

class ExportCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory or llama2.c .bin")->required();
    sub.add_option("--plan", plan_, "Compression plan (YAML) whose working copy is written (default: none)");
    sub.add_option("--healed", healed_,
                   "ARCHIVE PLAN_ID: the weights of a healed plan (/heal/<id>), rebuilt by training its parent again")
        ->expected(2);
    sub.add_option("--tokenizer", tokenizer_, "SentencePiece .model the run used (needed with --healed)");
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
    if (!healed_.empty() && !plan_.empty())
      throw InputError("give either --plan or --healed ARCHIVE PLAN_ID, not both (a healed plan brings its plan)");
    if (!healed_.empty() && tokenizer_.empty())
      throw InputError("--healed needs --tokenizer (the run's tokenizer: the training text is tokenised again)");
    if (!healed_.empty()) require_regular_file(healed_[0], "the archive");
    HfExportOptions options;
    options.force = force_;
    options.max_shard_bytes = parse_byte_size(shard_size_, "--shard-size");
    if (!plan_.empty()) require_regular_file(plan_, "the plan file");
    check_export_destination(out_, model_, force_);  // before minutes of loading

    const auto start = std::chrono::steady_clock::now();
    const std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(model_);
    const ModelConfig& config = checkpoint->config();
    options.dtype = dtype_.empty() ? config.dtype : parse_dtype(dtype_, "--dtype");
    const ShardLayout whole = make_shard_layout(config, TpShard{0, 1});
    std::optional<ValidatedPlan> plan;
    std::vector<std::string> files;
    if (!healed_.empty()) {
      train::HealResult healed = rebuild_healed(*checkpoint, load_host_weights(*checkpoint, whole), plan);
      files = export_hf_directory(*checkpoint, model_, healed.weights, healed.removed, out_, options);
    } else {
      plan.emplace(plan_.empty()
                       ? validate_plan(CompressionPlan::identity(config.num_layers), config, "identity plan", 1)
                       : load_plan(plan_, config, 1));
      HostWorkingCopy copy = host_working_copy(*plan, config, load_host_weights(*checkpoint, whole));
      files = export_hf_directory(*checkpoint, model_, copy.weights, copy.removed, out_, options);
    }

    const PlanSize size = plan_size(plan->plan(), config);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("exported {}{} as {} to {}: {} of {} layers kept, linear sparsity {:.4f}, {} files ({:.2f} s)",
                 model_,
                 !healed_.empty() ? " healed as " + healed_[1] + " of " + healed_[0]
                 : plan_.empty()  ? ""
                                  : " with the plan " + plan_,
                 dtype_name(options.dtype), out_,
                 config.num_layers - static_cast<int64_t>(plan->plan().dropped_layers().size()), config.num_layers,
                 size.sparsity, files.size(), seconds);
    for (const std::string& file : files) fmt::print("{}\n", file);
    return 0;
  }

 private:
  // The healed weights of /heal/<healed_[1]> in the archive healed_[0], rebuilt (see the header comment); `plan`
  // receives the parent plan. InputError (exit 2) naming the archive, the id or the text file when the record is
  // missing, the text's tokens are not the recorded ones, or the rebuilt run does not reproduce the loss curve.
  train::HealResult rebuild_healed(const Checkpoint& checkpoint, const HostWeights& pristine,
                                   std::optional<ValidatedPlan>& plan) const {
    const ModelConfig& config = checkpoint.config();
    const std::string& archive_path = healed_[0];
    const std::string& id = healed_[1];
    const RunArchive archive(archive_path);
    const std::optional<HealRecord> record = read_heal_record(archive, id);
    if (!record) {
      const std::vector<std::string> ids = heal_record_ids(archive);
      throw InputError(fmt::format("{}: no healed plan {} (complete /heal groups: {})", archive_path, id,
                                   ids.empty() ? "none" : fmt::format("{}", fmt::join(ids, ", "))));
    }
    const std::string where = fmt::format("{} /heal/{}", archive_path, id);
    HealSettings settings = heal_settings_from_yaml(record->settings_yaml, where);
    settings.train.bos_id = config.bos_id;
    const std::string parent_yaml = archive.read_plan_yaml(record->parent_id);
    plan.emplace(parse_plan(parent_yaml, config, fmt::format("{} /plans/{}", archive_path, record->parent_id), 1));

    // The training text, as the heal stage tokenised and split it; its tokens must be the recorded ones.
    require_regular_file(record->text, "the training text of " + where);
    HealText text = split_heal_text(
        tokenize_corpus_prefix(Tokenizer(tokenizer_), record->text, settings.max_text_tokens), settings.heldout_tokens);
    if (text.sha256 != record->text_sha256)
      throw InputError(fmt::format("{}: the training text {} has changed (or --tokenizer is not the run's): sha256 of "
                                   "its training tokens expected {}, found {}",
                                   where, record->text, record->text_sha256, text.sha256));
    const std::string parent_canonical = plan_to_yaml(canonical_plan(plan->plan()));
    const std::string found_id =
        plan_id_from_hash(healed_plan_hash(parent_canonical, record->settings_yaml, text.sha256));
    if (found_id != id)
      throw InputError(fmt::format("{}: the parent plan, settings and text give the id {}, not {}", where, found_id, id));

    spdlog::info("export: rebuilding {} [{}]: {} steps of {} x {} tokens from the plan {}", record->name, id,
                 settings.train.steps, settings.train.batch_sequences, settings.train.seq_len, record->parent_id);
    // The heal stage trains with one BLAS thread per rank (ModelReplica: thread workers or --threads 1), and a
    // BLAS product's rounding depends on its thread count: the rebuild must use one thread too.
    openblas_set_num_threads(1);
    SoloCommunicator solo;
    train::HealResult healed = train::heal(config, pristine, *plan, text.train, settings.train, solo);
    // The same model, plan, text and settings retrain bit for bit: any difference means another model.
    if (healed.curve.size() != record->loss.size())
      throw InputError(fmt::format("{}: the rebuilt run has {} steps, the archive {}", where, healed.curve.size(),
                                   record->loss.size()));
    for (size_t i = 0; i < healed.curve.size(); ++i)
      if (healed.curve[i].loss != record->loss[i] || healed.curve[i].grad_norm != record->grad_norm[i])
        throw InputError(fmt::format("{}: the rebuilt run does not reproduce the archived loss curve (step {}: loss "
                                     "{:.9g}, grad norm {:.9g}; archived {:.9g}, {:.9g}): is --model {} the run's model?",
                                     where, i + 1, healed.curve[i].loss, healed.curve[i].grad_norm, record->loss[i],
                                     record->grad_norm[i], model_));
    spdlog::info("export: {} rebuilt, loss curve as archived ({:.4f} -> {:.4f})", record->name, record->loss.front(),
                 record->loss.back());
    return healed;
  }

  std::string model_, plan_, out_, dtype_, tokenizer_;
  std::vector<std::string> healed_;
  std::string shard_size_ = "5GB";
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> make_export_command() { return std::make_unique<ExportCommand>(); }

}  // namespace divprune

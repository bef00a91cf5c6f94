#include "pipelines/run_calibration.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "compress/apply.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/sha256.hpp"
#include "model/tokenizer.hpp"
#include "parallel/topology.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

RunCalibration::RunCalibration(const RunConfig& config, const ModelConfig& model) : config_(config) {
  spec_.text = config.calibration_text;
  spec_.sequences = config.calibration_sequences;
  spec_.length = config.calibration_length > 0 ? config.calibration_length : std::min<int64_t>(2048, model.max_seq_len);
  spec_.seed = config.calibration_seed;
  sequential_ = config.calibration_mode == "sequential";
}

const std::string& RunCalibration::identity(const std::string& where) {
  if (!identity_.empty()) return identity_;
  if (spec_.text.empty())
    throw InputError(fmt::format("{}: the plan uses calibrated operators (wanda, sparsegpt or gptq): give the run "
                                 "configuration {} a `calibration:` section with a text",
                                 where, config_.file.string()));
  const std::string text = read_input_file(spec_.text, "the calibration text (calibration.text)");
  identity_ = fmt::format("calibration: {{text_sha256: {}, mode: {}, sequences: {}, length: {}, seed: {}}}\n",
                          sha256_hex(text), sequential_ ? "sequential" : "cached", spec_.sequences, spec_.length,
                          spec_.seed);
  return identity_;
}

void RunCalibration::prepare(ModelReplica& replica) {
  if (prepared_) return;
  world_step([&] {
    if (config_.tokenizer.empty())
      throw InputError(fmt::format("{}: calibration needs `tokenizer` to tokenise {}", config_.file.string(),
                                   spec_.text.string()));
    if (spec_.length > replica.config().max_seq_len)
      throw InputError(fmt::format("{}: calibration.length {} exceeds the model's context {}", config_.file.string(),
                                   spec_.length, replica.config().max_seq_len));
    sequences_ = calibration_sequences(Tokenizer(config_.tokenizer.string()), spec_);
  });
  if (!sequential_) {
    const auto start = std::chrono::steady_clock::now();
    // The statistics are those of the BASE model: reset the working copy whatever the last stage left in it.
    apply_plan(validate_plan(CompressionPlan::identity(replica.config().num_layers), replica.config(),
                             "the identity plan", replica.topology().tp),
               replica.pristine(), replica.model());
    stats_ = collect_calibration(replica.model(), sequences_);
    if (replica.topology().is_coordinator())
      spdlog::info("calibration: statistics of {} x {} tokens of {} collected in {:.2f} s (cached, reused by every "
                   "calibrated plan of the run)",
                   spec_.sequences, spec_.length, spec_.text.string(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  prepared_ = true;
}

void RunCalibration::apply(const ValidatedPlan& plan, ModelReplica& replica) {
  if (!plan.plan().needs_calibration()) {
    apply_plan(plan, replica.pristine(), replica.model());
  } else if (sequential_) {
    apply_plan_sequential(plan, replica.pristine(), replica.model(), sequences_);
  } else {
    apply_plan(plan, replica.pristine(), replica.model(), &*stats_);
  }
}

RunCalibration& run_calibration(StageContext& context) {
  if (!context.calibration)
    context.calibration = std::make_shared<RunCalibration>(context.config, context.replica.config());
  return *context.calibration;
}

std::string plan_hash(StageContext& context, const CompressionPlan& plan, const std::string& yaml,
                      const std::string& where) {
  if (!plan.needs_calibration()) return sha256_hex(yaml);
  return sha256_hex(yaml + run_calibration(context).identity(where));
}

}  // namespace divprune

#pragma once
// The calibration of a run (`calibration:` of the run configuration, configs/README.md; issue 16): what the
// calibrated operators (wanda, sparsegpt, gptq: compress/calibrated_operators.hpp) of every plan a stage
// evaluates are calibrated on, and how.
//
//   cached      the statistics (compress/calibration.hpp) are collected ONCE per run on every rank, from the base
//               model, the first time a stage has a calibrated plan to evaluate, and reused by every later plan of
//               every stage (sensitivity, sample, search, evaluate). The default; what a search wants.
//   sequential  every calibrated plan is applied with apply_plan_sequential (the papers' procedure: layer l is
//               calibrated on the outputs of the already compressed layers before it), one calibration forward
//               pass per layer per plan.
//
// Identity: a calibrated plan (one that needs_calibration()) depends on the calibration, so its archive hash is
// the sha256 of its canonical YAML followed by the line
//   calibration: {text_sha256: <sha256 of the text file>, mode: cached, sequences: 128, length: 256, seed: 0}
// (length resolved against the model's context). Every other plan keeps the hash of its canonical YAML alone,
// so archives written before calibration existed keep their ids. The archived YAML is the plan's canonical YAML
// either way (a plan file that parses); the calibration is in the run's archived configuration.
#include <optional>
#include <string>
#include <vector>

#include "compress/calibration.hpp"
#include "compress/plan.hpp"
#include "parallel/replica.hpp"
#include "pipelines/run_config.hpp"

namespace divprune {

struct StageContext;

class RunCalibration {
 public:
  RunCalibration(const RunConfig& config, const ModelConfig& model);

  // The identity line above; InputError naming `where` when the configuration has no calibration section.
  // Reads and hashes the text the first time (any rank may call it, no collective).
  const std::string& identity(const std::string& where);

  // Makes the replica ready to apply calibrated plans: tokenises the calibration windows (collective error
  // handling over every rank) and, in cached mode, collects the statistics from the base weights (the model's
  // working copy is reset to the pristine weights first). Collective over every rank; does nothing the second
  // time.
  void prepare(ModelReplica& replica);

  // The calibration windows' settings (text, sequences, length resolved against the model, seed): what
  // compress/calibration.hpp calibration_sequences() draws, e.g. for the OWL baseline's activation statistics.
  const CalibrationSpec& spec() const { return spec_; }

  // Applies `plan` to the replica's working copy with the calibration it needs (prepare() must have run when the
  // plan needs_calibration()). Collective over the replica's tensor-parallel group.
  void apply(const ValidatedPlan& plan, ModelReplica& replica);

 private:
  const RunConfig& config_;
  CalibrationSpec spec_;
  bool sequential_ = false;
  std::string identity_;
  bool prepared_ = false;
  std::vector<std::vector<int32_t>> sequences_;
  std::optional<CalibrationStats> stats_;
};

// Feature layout (compress/FEATURES.md): a run whose configuration has a `calibration:` section stores every
// plan's features in the calibrated layout (the original block followed by the calibrated tail), one without it in
// the original layout; so plans with calibrated operators (rtn included) need the section.
inline bool calibrated_features(const RunConfig& config) { return !config.calibration_text.empty(); }

// The run's calibration, created on first use and kept for the whole run (StageContext::calibration).
RunCalibration& run_calibration(StageContext& context);

// The archive hash of a plan with canonical YAML `yaml` (see above); plan_id_from_hash gives its id.
std::string plan_hash(StageContext& context, const CompressionPlan& plan, const std::string& yaml,
                      const std::string& where);

}  // namespace divprune

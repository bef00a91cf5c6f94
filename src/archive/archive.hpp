#pragma once
// The run archive: one HDF5 file per run, written only by the coordinator (schema: src/archive/SCHEMA.md).
// RunArchive reads and writes the root, /runs, /data, /baseline and /plans; search_archive.hpp and
// sensitivity_archive.hpp the /search and /sensitivity groups. Nothing outside src/archive touches the HDF5 file.
//
// Every write is one transaction: open the file, write, close. Between transactions the file is closed and
// consistent, so a job killed while it computes (the usual case: writes take milliseconds, forward passes
// minutes) leaves a readable archive. Objects that take several transactions (the baseline, a plan) get an
// integer attribute `complete` set to 1 in their last transaction; readers and resumed runs ignore or
// redo incomplete ones.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "metrics/base_logprobs.hpp"
#include "metrics/eval_data.hpp"
#include "metrics/plan_metrics.hpp"
#include "model/checkpoint.hpp"

namespace divprune {

inline constexpr int64_t kArchiveSchemaVersion = 1;

// sha256 over every checkpoint file's name, size and header (safetensors: the JSON header; other files: the
// whole file up to 1 MiB, else its first 64 KiB). Cheap: no weights are read.
std::string model_checksum(const Checkpoint& checkpoint);
// The parsed model configuration as JSON (what divprune uses, whatever layout the checkpoint had).
std::string model_config_json(const ModelConfig& config);

struct ArchiveRunInfo {
  std::string config_yaml;         // the full run configuration after --set overrides
  std::string model_path;
  std::string model_checksum;
  std::string model_config_json;
  std::string tokenizer_path;
  std::vector<std::string> stages;
  int world_size = 1;
  int tp = 1;
  int replicas = 1;
  std::string backend = "cpu";
  // The names of the plan feature vector this run writes (compress/FEATURES.md; they depend on the build and on
  // whether the configuration has a `calibration:` section). An archive that already holds plans written with
  // other names is refused: their stored vectors would be read as this layout. Empty: not checked.
  std::vector<std::string> feature_names;
};

// The base model's outputs for one perplexity chunk, as the baseline stage archives them.
struct BaselineChunk {
  std::vector<double> nll;           // (n)
  std::vector<int32_t> argmax;       // (n)
  std::vector<uint16_t> logprobs;    // full: (n, V) fp16 bits of log p - shift; empty when the chunk is not kept
  std::vector<double> logprob_shift; // full: (n) the shift of each row (metrics/base_logprobs.hpp)
  std::vector<int32_t> topk_ids;     // top-k: (n, k)
  std::vector<uint16_t> topk_logprobs;  // top-k: (n, k) fp16 bits
};

// One evaluated plan as the archive stores it.
struct PlanRecord {
  std::string id;          // group name under /plans: the first 16 hex digits of `hash`
  std::string hash;        // sha256 of the canonical plan YAML
  std::string name;
  std::string source;      // plan file, or "inline" / "builtin"
  std::string yaml;        // canonical plan YAML
  int64_t order = 0;       // index in the configuration's plan list
  int64_t run_index = 0;   // invocation of divprune run that computed it (/runs)
  int64_t replica = 0;     // replica that computed it
  double seconds = 0.0;
  double sparsity = 0.0;   // of the linear projections (compress/plan.hpp: plan_size)
  int64_t parameters = 0;  // parameters left
  std::vector<float> features;  // compress/plan.hpp: plan_features
  bool per_token = true;   // store per-token arrays (else summaries, per-prompt and per-item arrays only)
};

class RunArchive {
 public:
  explicit RunArchive(std::filesystem::path path) : path_(std::move(path)) {}
  // A sub-archive: the same layout (/data, /baseline, /plans) under the group `root` of the file, e.g. the
  // held-out evaluation (pipelines/heldout.cpp) under /heldout. Root attributes and /runs stay the file's.
  RunArchive(std::filesystem::path path, std::string root) : path_(std::move(path)), root_(std::move(root)) {}
  const std::filesystem::path& path() const { return path_; }
  const std::string& root() const { return root_; }  // "" for the file itself
  bool exists() const { return std::filesystem::exists(path_); }

  // Creates the file, or checks that an existing one has this schema and model (InputError otherwise); writes
  // the root attributes and records the invocation as /runs/<index>. Returns the 1-based invocation index.
  int64_t begin_run(const ArchiveRunInfo& info);
  // What begin_run would refuse in an existing file, checked without writing (a run validates before it loads
  // the model or touches the archive): not readable as HDF5 (locked, unreadable, damaged: the reason is named),
  // not writable, not a divprune archive, another schema or another model. Nothing to check for a missing file.
  void check_resumable(const std::string& model_checksum, const std::string& model_path) const;
  void end_run(int64_t run_index, double seconds);

  // ---- /data ----
  void write_eval_set(const EvalSet& set);
  EvalSet read_eval_set() const;

  // ---- /baseline ----
  // The eval-set hash of a complete baseline, or "" when there is none (or it is incomplete).
  std::string complete_baseline_hash() const;
  // Creates /baseline's datasets, sized for `set`, replacing any old /baseline; an incomplete one for the same data
  // and storage (an interrupted run) keeps its datasets, which the restart overwrites row by row (no file growth).
  void begin_baseline(const EvalSet& set, LogprobMode mode, int64_t top_k, int64_t vocab);
  void write_baseline_chunk(const EvalSet& set, int64_t chunk, const BaselineChunk& out);
  void write_baseline_prompt(const EvalSet& set, int64_t prompt, const std::vector<int32_t>& continuation,
                             const std::vector<int32_t>& tf_argmax);
  void write_baseline_mc(const EvalSet& set, int64_t item, const std::vector<double>& logprob);
  void finish_baseline(const EvalSet& set, const BaseOutputs& base, double seconds);
  BaseOutputs read_base_outputs() const;
  LogprobMode base_logprob_mode() const;
  int64_t base_top_k() const;
  // Rows [row0, row0 + rows) of the stored base log-probs (full: (rows, V) bits; top-k: ids and bits (rows, k)).
  void read_base_logprobs(int64_t row0, int64_t rows, std::vector<uint16_t>& bits) const;
  void read_base_topk(int64_t row0, int64_t rows, std::vector<int32_t>& ids, std::vector<uint16_t>& bits) const;

  // ---- /plans ----
  // Plan ids present under /plans and whether each is complete.
  std::map<std::string, bool> plan_status() const;
  void remove_plan(const std::string& id);
  void write_feature_names(const std::vector<std::string>& names);
  // Writes the whole group in one transaction, `complete` last.
  void write_plan(const PlanRecord& record, const EvalSet& set, const PlanOutputs& outputs, const PlanComparison& cmp);
  // Summary scalars of a plan (the metrics the archive holds for it).
  Summary read_plan_summary(const std::string& id) const;
  // The canonical YAML of a plan (attribute plan_yaml).
  std::string read_plan_yaml(const std::string& id) const;

 private:
  std::filesystem::path path_;
  std::string root_;
};

// The plan id used as group name: first 16 hex digits of the hash.
std::string plan_id_from_hash(const std::string& hash);

}  // namespace divprune

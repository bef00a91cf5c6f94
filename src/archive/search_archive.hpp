#pragma once
// Typed readers and writers of /search (src/archive/SCHEMA.md "/search"), written by the sample, train and search
// stages, and the architecture -> metric pairs they read back from /plans. Each writer is one transaction and
// writes exactly the datasets, attributes and annotations SCHEMA.md lists; readers return std::nullopt for a
// group that is missing or not complete.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.hpp"
#include "metrics/summary.hpp"

namespace divprune {

// One evaluated plan as a training pair: its features and one summary metric.
struct PlanPair {
  std::string id;
  std::string name;
  std::vector<float> features;
  double sparsity = 0.0;
  double value = 0.0;  // the metric as measured
};
// Pairs of the complete plans under /plans (all of them when `ids` is empty, else those ids in that order,
// missing, incomplete, failed (archive/plan_failure.hpp) and repeated ones left out), with `metric` as value
// (InputError when a plan lacks it).
std::vector<PlanPair> read_plan_pairs(const RunArchive& archive, SummaryMetric metric,
                                      const std::vector<std::string>& ids = {});

// /search/sample
struct SampleRecord {
  std::vector<std::string> ids;  // the random plans, in draw order
  std::string uniform_id;
  std::string best_random_id;    // "" when there is none
  std::string objective;         // the configuration's train.objective
  double budget_sparsity = 0.0;   // kind sparsity: the target; NaN for the other kinds
  double budget_tolerance = 0.0;
  int64_t seed = 0;
  // search/space.hpp BudgetKind by name; the attributes budget_kind and budget_fraction are written only for a
  // kind other than sparsity (archives of sparsity budgets keep their layout) and read as "sparsity" / NaN when absent.
  std::string budget_kind = "sparsity";
  double budget_fraction = std::numeric_limits<double>::quiet_NaN();
};
void write_search_sample(const RunArchive& archive, const SampleRecord& record);
std::optional<SampleRecord> read_search_sample(const RunArchive& archive);

// /search/predictor
struct PredictorRecord {
  std::string model_json;
  double r2 = 0.0, spearman = 0.0, mae = 0.0;
  std::vector<std::string> feature_names;
  std::vector<double> feature_gain;
  std::vector<std::string> ids;           // the training pairs
  std::vector<double> measured;           // their measured objective
  std::vector<double> held_out_prediction;
  std::string objective;
  int64_t folds = 0;
  int64_t pairs = 0;
};
void write_search_predictor(const RunArchive& archive, const PredictorRecord& record);
std::optional<PredictorRecord> read_search_predictor(const RunArchive& archive);

// /search/rounds/<round>
struct RoundRecord {
  std::vector<std::string> ids;  // best predicted first
  std::vector<double> predicted;
  std::vector<double> measured;
};
void write_search_round(const RunArchive& archive, int64_t round, const RoundRecord& record);
std::optional<RoundRecord> read_search_round(const RunArchive& archive, int64_t round);

// /search/pareto
struct ParetoRecord {
  std::vector<std::string> ids;  // by sparsity
  std::vector<double> sparsity;
  std::vector<double> objective;
};
// /search/best
struct BestRecord {
  std::string id;
  std::string name;
  std::string yaml;  // canonical plan YAML
  double objective = 0.0;
  double predicted = 0.0;  // NaN when unknown
  double sparsity = 0.0;
};
// Removes /search/best and /search/pareto (the search stage, when it starts).
void clear_search_outcome(const RunArchive& archive);
// Writes /search/pareto and /search/best (without attributes but `complete` when `best` is empty) in one
// transaction.
void write_search_outcome(const RunArchive& archive, const ParetoRecord& pareto, const std::optional<BestRecord>& best);
std::optional<ParetoRecord> read_search_pareto(const RunArchive& archive);
// std::nullopt when /search/best is missing, incomplete or names no plan.
std::optional<BestRecord> read_search_best(const RunArchive& archive);

}  // namespace divprune

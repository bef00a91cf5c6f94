#pragma once
// What the search stages (sample, train, search) share: their configuration sections (`space`, `sample`,
// `train`, `search`; configs/README.md), the architecture -> metric pairs read back from the archive, the
// objective, and the predictor fit on those pairs.
//
// Archive layout written by these stages (besides the /plans groups every evaluated plan gets), through the
// typed records of src/archive/search_archive.hpp:
//   /search/sample     ids (strings) of the sampled plans, uniform_id / best_random_id attributes
//   /search/predictor  model_json, r2, spearman, mae, feature_gain, held-out predictions (train stage)
//   /search/rounds/<r> ids, predicted, measured of the plans a search round evaluated (complete attribute)
//   /search/pareto     ids, sparsity, objective of the Pareto front (linear sparsity up, objective loss down)
//   /search/best       attributes id, yaml, objective, sparsity of the best searched plan
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "archive/search_archive.hpp"
#include "metrics/summary.hpp"
#include "pipelines/stage.hpp"
#include "search/acquisition.hpp"
#include "search/evolution.hpp"
#include "search/predictor.hpp"
#include "search/space.hpp"

namespace divprune {

// The search objective (train.objective): a plan summary metric and whether the search maximises it.
enum class ObjectiveDirection { Maximise, Minimise };
struct SearchObjective {
  const char* name;  // the configuration's value
  SummaryMetric metric;
  ObjectiveDirection direction;
  // loss = sign() * value is lower-is-better (-1 for a maximised metric).
  double sign() const { return direction == ObjectiveDirection::Maximise ? -1.0 : 1.0; }
};
// The one name table of the objectives.
inline constexpr std::array<SearchObjective, 3> kSearchObjectives = {{
    {"mean_fdt", SummaryMetric::FdtMean, ObjectiveDirection::Maximise},
    {"mean_kl", SummaryMetric::KlMean, ObjectiveDirection::Minimise},
    {"perplexity", SummaryMetric::Perplexity, ObjectiveDirection::Minimise},
}};
// The objective named `name`; InputError "where: unknown objective ..." for a name not in kSearchObjectives.
const SearchObjective& parse_search_objective(const std::string& name, const std::string& where = "train.objective");

struct SearchSettings {
  SearchSpace space;
  Budget budget;
  // sample
  int64_t sample_count = 16;
  uint64_t sample_seed = 1;
  // train
  SearchObjective objective = kSearchObjectives[0];  // mean_fdt (maximised), mean_kl or perplexity (minimised)
  PredictorParams predictor;
  bool aggregate_features = true;      // search/predictor_features.hpp
  // The run has a `calibration:` section: plan features in the calibrated layout (pipelines/run_calibration.hpp).
  bool calibrated_features = false;
  int64_t folds = 5;
  // search
  int64_t rounds = 2;
  int64_t evaluate_per_round = 4;
  EvolutionParams evolution;
  AcquisitionParams acquisition;  // search.acquisition, kappa, boosters, min_distance (search/acquisition.hpp)
};

// Reads the four sections from the run configuration (InputError naming the key on bad values).
SearchSettings read_search_settings(const RunConfig& config, const ModelConfig& model);

// One evaluated plan as a training pair (value: the objective's metric as measured).
using Pair = PlanPair;
// Pairs of the complete plans under /plans (all of them when `ids` is empty, else those ids in that order,
// missing or incomplete ones left out). Coordinator only.
std::vector<Pair> read_pairs(const RunArchive& archive, const SearchObjective& objective,
                             const std::vector<std::string>& ids = {});
// Ids of the search's pairs: the sample stage's random plans and its uniform reference, then the plans of every
// complete search round in round order; the population the search stage fits on. Empty when the archive holds
// no complete sample stage. Coordinator only.
std::vector<std::string> search_pool_ids(const RunArchive& archive);
// Predictor inputs (search/predictor_features.hpp: the plan features and their aggregates) of pairs and of plans.
// `calibrated`: the calibrated feature layout (SearchSettings::calibrated_features).
FeatureMatrix feature_matrix(const std::vector<Pair>& pairs, const ModelConfig& model, bool aggregates,
                             bool calibrated = false);
FeatureMatrix feature_matrix(const std::vector<CompressionPlan>& plans, const ModelConfig& model, bool aggregates,
                             bool calibrated = false);

// A plan as an evaluate entry (canonical YAML).
PlanEntry plan_entry(const std::string& name, const std::string& source, const CompressionPlan& plan);

// Entries broadcast from the coordinator to every rank.
void broadcast_entries(std::vector<PlanEntry>& entries);

// Fits the predictor on `pairs` with k-fold CV and writes /search/predictor (coordinator only).
PredictorScores train_and_store(RunArchive& archive, const std::vector<Pair>& pairs, const SearchSettings& s,
                                const ModelConfig& model, std::optional<Predictor>* trained);

}  // namespace divprune

#include "archive/search_archive.hpp"

#include <fmt/format.h>

#include <set>

#include "archive/archive_file.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {

constexpr const char* kSample = "search/sample";
constexpr const char* kPredictor = "search/predictor";
constexpr const char* kPareto = "search/pareto";
constexpr const char* kBest = "search/best";
std::string round_group(int64_t round) { return fmt::format("search/rounds/{}", round); }


}  // namespace

std::vector<PlanPair> read_plan_pairs(const RunArchive& archive, SummaryMetric metric, const std::vector<std::string>& ids) {
  const auto status = archive.plan_status();
  std::vector<std::string> wanted = ids;
  if (wanted.empty())
    for (const auto& [id, done] : status) wanted.push_back(id);
  std::vector<PlanPair> pairs;
  std::set<std::string> seen;
  const H5File f = open_archive_read(archive);
  for (const std::string& id : wanted) {
    const auto it = status.find(id);
    if (it == status.end() || !it->second || !seen.insert(id).second) continue;
    const std::string g = "plans/" + id;
    // A plan archived as failed (non-finite outputs, archive/plan_failure.hpp) has no metric: not a pair.
    if (f.has_attr(g, "status") && f.attr_string(g, "status") == "failed") continue;
    PlanPair p;
    p.id = id;
    p.name = f.attr_string(g, "name");
    p.features = f.read_float(g + "/features");
    p.sparsity = f.attr_double(g, "sparsity");
    p.value = f.read_double(g + "/summary/" + summary_metric_name(metric))[0];
    pairs.push_back(std::move(p));
  }
  return pairs;
}

// ---- /search/sample ---------------------------------------------------------------------------------------------

void write_search_sample(const RunArchive& archive, const SampleRecord& r) {
  write_transaction(archive, [&](H5File& f) {
    f.remove(kSample);
    f.create_group(kSample);
    write_annotated_strings(f, fmt::format("{}/ids", kSample), r.ids, "", "plan ids of the random samples, in draw order");
    f.set_attr(kSample, "uniform_id", r.uniform_id);
    f.set_attr(kSample, "best_random_id", r.best_random_id);
    f.set_attr(kSample, "objective", r.objective);
    f.set_attr(kSample, "budget_sparsity", r.budget_sparsity);
    f.set_attr(kSample, "budget_tolerance", r.budget_tolerance);
    if (r.budget_kind != "sparsity") {
      f.set_attr(kSample, "budget_kind", r.budget_kind);
      f.set_attr(kSample, "budget_fraction", r.budget_fraction);
    }
    f.set_attr(kSample, "seed", r.seed);
    f.set_attr(kSample, "complete", int64_t{1});
  });
}

std::optional<SampleRecord> read_search_sample(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  if (!group_complete(f, kSample)) return std::nullopt;
  SampleRecord r;
  r.ids = f.read_strings(fmt::format("{}/ids", kSample));
  r.uniform_id = f.attr_string(kSample, "uniform_id");
  r.best_random_id = f.attr_string(kSample, "best_random_id");
  r.objective = f.attr_string(kSample, "objective");
  r.budget_sparsity = f.attr_double(kSample, "budget_sparsity");
  r.budget_tolerance = f.attr_double(kSample, "budget_tolerance");
  if (f.has_attr(kSample, "budget_kind")) {
    r.budget_kind = f.attr_string(kSample, "budget_kind");
    r.budget_fraction = f.attr_double(kSample, "budget_fraction");
  }
  r.seed = f.attr_int(kSample, "seed");
  return r;
}

// ---- /search/predictor ------------------------------------------------------------------------------------------

void write_search_predictor(const RunArchive& archive, const PredictorRecord& r) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = kPredictor;
    f.remove(g);
    f.create_group(g);
    write_annotated_strings(f, g + "/model_json", {r.model_json}, "",
                  "XGBoost JSON model of the predictor, fit on every pair listed in ids");
    write_annotated_scalar(f, g + "/r2", r.r2, "", "k-fold cross-validated R² of the predictor");
    write_annotated_scalar(f, g + "/spearman", r.spearman, "",
                 "k-fold cross-validated Spearman rank correlation of prediction and measurement");
    write_annotated_scalar(f, g + "/mae", r.mae, "objective", "k-fold cross-validated mean absolute error");
    write_annotated_doubles(f, g + "/feature_gain", r.feature_gain, "", "total XGBoost gain per feature (names: feature_names)");
    write_annotated_strings(f, g + "/feature_names", r.feature_names, "",
                  "names of the predictor's inputs: the plan features (src/compress/FEATURES.md) and their aggregates "
                  "(src/search/predictor_features.hpp)");
    write_annotated_strings(f, g + "/ids", r.ids, "", "plan ids of the training pairs");
    write_annotated_doubles(f, g + "/measured", r.measured, "objective", "measured objective of each pair");
    write_annotated_doubles(f, g + "/held_out_prediction", r.held_out_prediction, "objective",
                  "each pair predicted by the CV model that did not see it");
    f.set_attr(g, "objective", r.objective);
    f.set_attr(g, "folds", r.folds);
    f.set_attr(g, "pairs", r.pairs);
    f.set_attr(g, "complete", int64_t{1});
  }, archive_write_reserve(static_cast<int64_t>(r.model_json.size())));  // the model can be large
}

std::optional<PredictorRecord> read_search_predictor(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  const std::string g = kPredictor;
  if (!group_complete(f, g)) return std::nullopt;
  PredictorRecord r;
  const std::vector<std::string> model = f.read_strings(g + "/model_json");
  if (model.size() != 1)
    throw InputError(fmt::format("{}: {}/model_json holds {} strings, not 1", archive.path().string(), g, model.size()));
  r.model_json = model[0];
  r.r2 = f.read_double(g + "/r2")[0];
  r.spearman = f.read_double(g + "/spearman")[0];
  r.mae = f.read_double(g + "/mae")[0];
  r.feature_gain = f.read_double(g + "/feature_gain");
  r.feature_names = f.read_strings(g + "/feature_names");
  r.ids = f.read_strings(g + "/ids");
  r.measured = f.read_double(g + "/measured");
  r.held_out_prediction = f.read_double(g + "/held_out_prediction");
  r.objective = f.attr_string(g, "objective");
  r.folds = f.attr_int(g, "folds");
  r.pairs = f.attr_int(g, "pairs");
  return r;
}

// ---- /search/rounds/<r> -----------------------------------------------------------------------------------------

void write_search_round(const RunArchive& archive, int64_t round, const RoundRecord& r) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = round_group(round);
    f.remove(g);
    f.create_group(g);
    write_annotated_strings(f, g + "/ids", r.ids, "", "plan ids evaluated in this round, best predicted first");
    write_annotated_doubles(f, g + "/predicted", r.predicted, "objective", "objective predicted before evaluation");
    write_annotated_doubles(f, g + "/measured", r.measured, "objective", "objective measured by evaluation");
    f.set_attr(g, "complete", int64_t{1});
  });
}

std::optional<RoundRecord> read_search_round(const RunArchive& archive, int64_t round) {
  const H5File f = open_archive_read(archive);
  const std::string g = round_group(round);
  if (!group_complete(f, g)) return std::nullopt;
  RoundRecord r;
  r.ids = f.read_strings(g + "/ids");
  r.predicted = f.read_double(g + "/predicted");
  r.measured = f.read_double(g + "/measured");
  return r;
}

// ---- /search/pareto and /search/best ----------------------------------------------------------------------------

void clear_search_outcome(const RunArchive& archive) {
  write_transaction(archive, [&](H5File& f) {
    f.remove(kBest);
    f.remove(kPareto);
  });
}

void write_search_outcome(const RunArchive& archive, const ParetoRecord& pareto, const std::optional<BestRecord>& best) {
  write_transaction(archive, [&](H5File& f) {
    const std::string p = kPareto;
    f.remove(p);
    f.create_group(p);
    write_annotated_strings(f, p + "/ids", pareto.ids, "", "plan ids of the Pareto front (linear sparsity up, objective loss down)");
    write_annotated_doubles(f, p + "/sparsity", pareto.sparsity, "fraction", "linear sparsity of each front plan");
    write_annotated_doubles(f, p + "/objective", pareto.objective, "objective", "measured objective of each front plan");
    f.remove(kBest);
    f.create_group(kBest);
    if (best) {
      f.set_attr(kBest, "id", best->id);
      f.set_attr(kBest, "name", best->name);
      f.set_attr(kBest, "yaml", best->yaml);
      f.set_attr(kBest, "objective", best->objective);
      f.set_attr(kBest, "predicted", best->predicted);
      f.set_attr(kBest, "sparsity", best->sparsity);
    }
    f.set_attr(kBest, "complete", int64_t{1});
  });
}

std::optional<ParetoRecord> read_search_pareto(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  const std::string p = kPareto;
  if (!f.exists(p + "/ids")) return std::nullopt;
  ParetoRecord r;
  r.ids = f.read_strings(p + "/ids");
  r.sparsity = f.read_double(p + "/sparsity");
  r.objective = f.read_double(p + "/objective");
  return r;
}

std::optional<BestRecord> read_search_best(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  if (!group_complete(f, kBest) || !f.has_attr(kBest, "id")) return std::nullopt;
  BestRecord r;
  r.id = f.attr_string(kBest, "id");
  r.name = f.attr_string(kBest, "name");
  r.yaml = f.attr_string(kBest, "yaml");
  r.objective = f.attr_double(kBest, "objective");
  r.predicted = f.attr_double(kBest, "predicted");
  r.sparsity = f.attr_double(kBest, "sparsity");
  return r;
}

}  // namespace divprune

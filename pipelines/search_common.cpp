#include "pipelines/search_common.hpp"

#include <fmt/format.h>

#include <set>

#include "core/errors.hpp"
#include "core/sha256.hpp"
#include "pipelines/config_section.hpp"
#include "search/predictor_features.hpp"

namespace divprune {

SearchSettings read_search_settings(const RunConfig& c, const ModelConfig& model) {
  SearchSettings s;
  const YAML::Node space = c.root["space"], sample = c.root["sample"], train = c.root["train"], search = c.root["search"];
  check_section_keys(c, space, "space",
             {"sparsity_levels", "methods", "components", "int8", "removable_layers", "max_removed_layers", "budget"});
  check_section_keys(c, sample, "sample", {"count", "seed"});
  check_section_keys(c, train, "train", {"objective", "folds", "rounds", "max_depth", "eta", "seed", "aggregate_features"});
  check_section_keys(c, search, "search", {"rounds", "evaluate", "generations", "population", "parents", "crossover_rate", "seed"});
  if (space) {
    s.space.sparsity_levels = section_value(c, space, "sparsity_levels", "space", s.space.sparsity_levels);
    if (space["methods"]) {
      s.space.methods.clear();
      for (const auto& n : section_value(c, space, "methods", "space", std::vector<std::string>{})) {
        bool found = false;
        for (PruneMethod m : kAllPruneMethods)
          if (prune_method_name(m) == n) s.space.methods.push_back(m), found = true;
        if (!found) throw InputError(fmt::format("{}: unknown prune method \"{}\"", config_where(c, space["methods"], "space.methods"), n));
      }
    }
    if (space["components"]) {
      s.space.components.clear();
      for (const auto& n : section_value(c, space, "components", "space", std::vector<std::string>{})) {
        bool found = false;
        for (Component k : kAllComponents)
          if (component_name(k) == n) s.space.components.push_back(k), found = true;
        if (!found) throw InputError(fmt::format("{}: unknown component \"{}\"", config_where(c, space["components"], "space.components"), n));
      }
    }
    s.space.int8 = section_value(c, space, "int8", "space", s.space.int8);
    s.space.removable_layers = section_value(c, space, "removable_layers", "space", s.space.removable_layers);
    s.space.max_removed_layers = section_value(c, space, "max_removed_layers", "space", s.space.max_removed_layers);
    const YAML::Node b = space["budget"];
    check_section_keys(c, b, "space.budget", {"sparsity", "tolerance"});
    s.budget.sparsity = section_value(c, b, "sparsity", "space.budget", s.budget.sparsity);
    s.budget.tolerance = section_value(c, b, "tolerance", "space.budget", s.budget.tolerance);
  }
  s.sample_count = section_value<int64_t>(c, sample, "count", "sample", s.sample_count);
  s.sample_seed = section_value<uint64_t>(c, sample, "seed", "sample", s.sample_seed);
  s.objective = section_value<std::string>(c, train, "objective", "train", s.objective);
  objective_key(s.objective);  // validates
  s.folds = section_value<int64_t>(c, train, "folds", "train", s.folds);
  s.predictor.rounds = section_value<int>(c, train, "rounds", "train", s.predictor.rounds);
  s.predictor.max_depth = section_value<int>(c, train, "max_depth", "train", s.predictor.max_depth);
  s.predictor.eta = section_value<double>(c, train, "eta", "train", s.predictor.eta);
  s.predictor.seed = section_value<uint64_t>(c, train, "seed", "train", s.predictor.seed);
  s.aggregate_features = section_value<bool>(c, train, "aggregate_features", "train", s.aggregate_features);
  s.rounds = section_value<int64_t>(c, search, "rounds", "search", s.rounds);
  s.evaluate_per_round = section_value<int64_t>(c, search, "evaluate", "search", s.evaluate_per_round);
  s.evolution.generations = section_value<int>(c, search, "generations", "search", s.evolution.generations);
  s.evolution.population = section_value<int>(c, search, "population", "search", s.evolution.population);
  s.evolution.parents = section_value<int>(c, search, "parents", "search", s.evolution.parents);
  s.evolution.crossover_rate = section_value<double>(c, search, "crossover_rate", "search", s.evolution.crossover_rate);
  s.evolution.seed = section_value<uint64_t>(c, search, "seed", "search", s.evolution.seed);
  if (s.sample_count < 1) throw InputError(fmt::format("{}: sample.count must be at least 1", c.file.string()));
  if (s.folds < 2) throw InputError(fmt::format("{}: train.folds must be at least 2", c.file.string()));
  if (s.rounds < 0 || s.evaluate_per_round < 1)
    throw InputError(fmt::format("{}: search.rounds must be >= 0 and search.evaluate >= 1", c.file.string()));
  validate_space(s.space, model, s.budget);
  return s;
}

std::string objective_key(const std::string& objective) {
  if (objective == "mean_fdt") return "fdt_mean";
  if (objective == "mean_kl") return "kl_mean";
  if (objective == "perplexity") return "perplexity";
  throw InputError(fmt::format("train.objective: \"{}\" is not one of mean_fdt, mean_kl, perplexity", objective));
}

double objective_sign(const std::string& objective) { return objective == "mean_fdt" ? -1.0 : 1.0; }

std::vector<Pair> read_pairs(const RunArchive& archive, const std::string& objective, const std::vector<std::string>& ids) {
  const auto status = archive.plan_status();
  std::vector<std::string> wanted = ids;
  if (wanted.empty())
    for (const auto& [id, done] : status) wanted.push_back(id);
  const std::string key = objective_key(objective);
  std::vector<Pair> pairs;
  std::set<std::string> seen;
  H5File f = archive.open_read();
  for (const std::string& id : wanted) {
    const auto it = status.find(id);
    if (it == status.end() || !it->second || !seen.insert(id).second) continue;
    Pair p;
    p.id = id;
    const std::string g = "plans/" + id;
    p.name = f.attr_string(g, "name");
    p.features = f.read_float(g + "/features");
    p.sparsity = f.attr_double(g, "sparsity");
    p.value = f.read_double(g + "/summary/" + key)[0];
    pairs.push_back(std::move(p));
  }
  return pairs;
}

std::vector<std::string> search_pool_ids(const RunArchive& archive) {
  H5File f = archive.open_read();
  if (!f.exists("search/sample") || !f.has_attr("search/sample", "complete")) return {};
  std::vector<std::string> ids = f.read_strings("search/sample/ids");
  ids.push_back(f.attr_string("search/sample", "uniform_id"));
  for (int64_t r = 0;; ++r) {
    const std::string g = fmt::format("search/rounds/{}", r);
    if (!f.exists(g) || !f.has_attr(g, "complete")) break;
    const std::vector<std::string> round = f.read_strings(g + "/ids");
    ids.insert(ids.end(), round.begin(), round.end());
  }
  return ids;
}

namespace {

// One predictor row (predictor_row) per item, from the plan features `features_of(item)` returns.
template <typename Item, typename FeaturesOf>
FeatureMatrix predictor_rows(const std::vector<Item>& items, FeaturesOf features_of, const ModelConfig& model,
                             bool aggregates) {
  FeatureMatrix x;
  x.rows = items.size();
  x.cols = predictor_feature_names(model, aggregates).size();
  for (const Item& item : items) {
    const std::vector<float> row = predictor_row(features_of(item), model, aggregates);
    x.values.insert(x.values.end(), row.begin(), row.end());
  }
  return x;
}

}  // namespace

FeatureMatrix feature_matrix(const std::vector<Pair>& pairs, const ModelConfig& model, bool aggregates) {
  return predictor_rows(pairs, [](const Pair& p) { return p.features; }, model, aggregates);
}

FeatureMatrix feature_matrix(const std::vector<CompressionPlan>& plans, const ModelConfig& model, bool aggregates) {
  return predictor_rows(plans, [&](const CompressionPlan& p) { return plan_features(p, model); }, model, aggregates);
}

PlanEntry plan_entry(const std::string& name, const std::string& source, const CompressionPlan& plan) {
  PlanEntry e;
  e.name = name;
  e.source = source;
  e.yaml = plan_to_yaml(canonical_plan(plan));
  e.where = source + " " + name;
  return e;
}

void broadcast_entries(std::vector<PlanEntry>& entries) {
  ByteWriter w;
  w.put<int64_t>(static_cast<int64_t>(entries.size()));
  auto put_string = [&](const std::string& s) { w.put_vector(std::span<const char>(s.data(), s.size())); };
  for (const PlanEntry& e : entries) {
    put_string(e.name);
    put_string(e.source);
    put_string(e.yaml);
    put_string(e.where);
  }
  Bytes b = w.take();
  broadcast_bytes(b);
  ByteReader r(b);
  const int64_t n = r.get<int64_t>();
  entries.assign(static_cast<size_t>(n), PlanEntry{});
  auto get_string = [&] {
    const std::vector<char> v = r.get_vector<char>();
    return std::string(v.begin(), v.end());
  };
  for (PlanEntry& e : entries) {
    e.name = get_string();
    e.source = get_string();
    e.yaml = get_string();
    e.where = get_string();
  }
}

PredictorScores train_and_store(RunArchive& archive, const std::vector<Pair>& pairs, const SearchSettings& s,
                                const ModelConfig& model_config, std::optional<Predictor>* trained) {
  if (pairs.size() < 4)
    throw InputError(fmt::format("train: {} evaluated plans in the archive, at least 4 are needed (run `sample` first)",
                                 pairs.size()));
  const FeatureMatrix x = feature_matrix(pairs, model_config, s.aggregate_features);
  const std::vector<std::string> feature_names = predictor_feature_names(model_config, s.aggregate_features);
  std::vector<double> y;
  for (const Pair& p : pairs) y.push_back(p.value);
  const size_t folds = std::min<size_t>(static_cast<size_t>(s.folds), pairs.size());
  PredictorScores scores = cross_validate(x, y, s.predictor, folds);
  Predictor model = Predictor::train(x, y, s.predictor);
  const std::vector<double> gain = model.feature_gain(x.cols);
  H5File f = archive.open_write();
  f.remove("search/predictor");
  f.create_group("search/predictor");
  const std::string g = "search/predictor";
  f.write_strings(g + "/model_json", {model.model_json()});
  annotate(f, g + "/model_json", "", "XGBoost JSON model of the predictor, fit on every pair listed in ids");
  f.write_scalar(g + "/r2", scores.r2);
  annotate(f, g + "/r2", "", "k-fold cross-validated R² of the predictor");
  f.write_scalar(g + "/spearman", scores.spearman);
  annotate(f, g + "/spearman", "", "k-fold cross-validated Spearman rank correlation of prediction and measurement");
  f.write_scalar(g + "/mae", scores.mae);
  annotate(f, g + "/mae", "objective", "k-fold cross-validated mean absolute error");
  f.write_double(g + "/feature_gain", {static_cast<int64_t>(gain.size())}, gain.data());
  annotate(f, g + "/feature_gain", "", "total XGBoost gain per feature (names: feature_names)");
  f.write_strings(g + "/feature_names", feature_names);
  annotate(f, g + "/feature_names", "",
           "names of the predictor's inputs: the plan features (src/compress/FEATURES.md) and their aggregates "
           "(src/search/predictor_features.hpp)");
  std::vector<std::string> ids;
  for (const Pair& p : pairs) ids.push_back(p.id);
  f.write_strings(g + "/ids", ids);
  annotate(f, g + "/ids", "", "plan ids of the training pairs");
  f.write_double(g + "/measured", {static_cast<int64_t>(y.size())}, y.data());
  annotate(f, g + "/measured", "objective", "measured objective of each pair");
  f.write_double(g + "/held_out_prediction", {static_cast<int64_t>(scores.held_out_prediction.size())},
                 scores.held_out_prediction.data());
  annotate(f, g + "/held_out_prediction", "objective", "each pair predicted by the CV model that did not see it");
  f.set_attr(g, "objective", s.objective);
  f.set_attr(g, "folds", static_cast<int64_t>(scores.folds));
  f.set_attr(g, "pairs", static_cast<int64_t>(pairs.size()));
  f.set_attr(g, "complete", int64_t{1});
  if (trained) trained->emplace(std::move(model));
  return scores;
}

}  // namespace divprune

#include "pipelines/search_common.hpp"

#include <fmt/format.h>

#include <set>

#include "archive/sha256.hpp"
#include "core/errors.hpp"
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
  s.objective = parse_search_objective(section_value<std::string>(c, train, "objective", "train", s.objective.name));
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

const SearchObjective& parse_search_objective(const std::string& name) {
  for (const SearchObjective& o : kSearchObjectives)
    if (name == o.name) return o;
  throw InputError(fmt::format("train.objective: \"{}\" is not one of mean_fdt, mean_kl, perplexity", name));
}

std::vector<Pair> read_pairs(const RunArchive& archive, const SearchObjective& objective, const std::vector<std::string>& ids) {
  return read_plan_pairs(archive, objective.metric, ids);
}

std::vector<std::string> search_pool_ids(const RunArchive& archive) {
  const std::optional<SampleRecord> sample = read_search_sample(archive);
  if (!sample) return {};
  std::vector<std::string> ids = sample->ids;
  ids.push_back(sample->uniform_id);
  for (int64_t r = 0;; ++r) {
    const std::optional<RoundRecord> round = read_search_round(archive, r);
    if (!round) break;
    ids.insert(ids.end(), round->ids.begin(), round->ids.end());
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
  PredictorRecord record;
  record.model_json = model.model_json();
  record.r2 = scores.r2;
  record.spearman = scores.spearman;
  record.mae = scores.mae;
  record.feature_gain = gain;
  record.feature_names = feature_names;
  for (const Pair& p : pairs) record.ids.push_back(p.id);
  record.measured = y;
  record.held_out_prediction = scores.held_out_prediction;
  record.objective = s.objective.name;
  record.folds = static_cast<int64_t>(scores.folds);
  record.pairs = static_cast<int64_t>(pairs.size());
  write_search_predictor(archive, record);
  if (trained) trained->emplace(std::move(model));
  return scores;
}

}  // namespace divprune

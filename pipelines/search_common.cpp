#include "pipelines/search_common.hpp"

#include <fmt/format.h>

#include <set>

#include "core/errors.hpp"
#include "pipelines/run_calibration.hpp"
#include "search/predictor_features.hpp"

namespace divprune {

namespace {

// One element of space.quant: none, int8, gptq-B / rtn-B (bits B, the other parameters at their plan
// defaults: group_size 128, symmetric, no act-order), or a map in the plan's syntax {method, bits, group_size, sym,
// act_order}. Checked like a plan's quant on every searched component it fits (space.hpp quant_choice_applies);
// it must fit at least one.
QuantChoice parse_quant_choice(const ConfigNode& n, const SearchSpace& space, const ModelConfig& model) {
  QuantChoice q;
  if (n.is_map()) {
    n.check_keys({"method", "bits", "group_size", "sym", "act_order"});
    q.method = n.required("method").as_enum(kQuantMethodNames);
    if (!has_grid(q.method) && n.size() > 1)
      n.fail(fmt::format("bits, group_size, sym and act_order apply to gptq and rtn only, not to {}",
                         kQuantMethodNames.name(q.method)));
    q.params.bits = n.get("bits", q.params.bits);
    q.params.group_size = n.get("group_size", q.params.group_size);
    q.params.sym = n.get("sym", q.params.sym);
    q.params.act_order = n.get("act_order", q.params.act_order);
  } else {
    const std::string text = n.as<std::string>();
    const size_t dash = text.find('-');
    if (dash == std::string::npos) {
      q.method = n.as_enum(kQuantMethodNames);
    } else {
      const std::string method = text.substr(0, dash), bits = text.substr(dash + 1);
      if ((method != "gptq" && method != "rtn") || bits.empty() || bits.size() > 1 || bits[0] < '0' || bits[0] > '9')
        n.fail(fmt::format("expected none, int8, gptq-B or rtn-B (B: bits) or a map {{method, bits, group_size, sym, "
                           "act_order}}, found \"{}\"", text));
      q.method = method == "gptq" ? QuantMethod::Gptq : QuantMethod::Rtn;
      q.params.bits = bits[0] - '0';
    }
  }
  const int b = q.params.bits;
  if (has_grid(q.method) && b != 2 && b != 3 && b != 4 && b != 8) n.fail(fmt::format("bits {} is not one of 2, 3, 4, 8", b));
  bool fits_one = false;
  for (Component c : space.components) {
    if (!quant_choice_applies(q, c, model)) continue;
    fits_one = true;
    CompressionPlan plan = CompressionPlan::identity(model.num_layers);
    plan.at(0, c).quant = q.method;
    plan.at(0, c).quant_params = q.params;
    validate_plan(plan, model, n.where());  // bits, sym / act_order on the right method: one error line
  }
  if (!fits_one)
    n.fail(fmt::format("group_size {} divides the input columns of none of the searched components",
                       q.params.group_size));
  return q;
}

}  // namespace

SearchSettings read_search_settings(const RunConfig& c, const ModelConfig& model) {
  SearchSettings s;
  const ConfigNode space = c.root["space"].check_keys(
      {"sparsity_levels", "methods", "components", "int8", "quant", "removable_layers", "max_removed_layers", "budget"});
  const ConfigNode sample = c.root["sample"].check_keys({"count", "seed"});
  const ConfigNode train =
      c.root["train"].check_keys({"objective", "folds", "rounds", "max_depth", "eta", "seed", "aggregate_features"});
  const ConfigNode search = c.root["search"].check_keys(
      {"rounds", "evaluate", "generations", "population", "parents", "crossover_rate", "seed", "acquisition", "kappa",
       "boosters", "min_distance"});
  s.space.sparsity_levels = space.get("sparsity_levels", s.space.sparsity_levels);
  if (space["methods"].present()) {
    s.space.methods.clear();
    for (const ConfigNode& n : space["methods"].elements()) s.space.methods.push_back(n.as_enum(kPruneMethodNames));
  }
  if (space["components"].present()) {
    s.space.components.clear();
    for (const ConfigNode& n : space["components"].elements()) s.space.components.push_back(n.as_enum(kComponentNames));
  }
  s.space.int8 = space.get("int8", s.space.int8);
  for (const ConfigNode& n : space["quant"].elements()) {
    s.space.quant.push_back(parse_quant_choice(n, s.space, model));
    // gptq is calibrated; rtn has no calibration but its features are in the calibrated layout (FEATURES.md).
    if (has_grid(s.space.quant.back().method) && !calibrated_features(c))
      n.fail(fmt::format("{} needs the run's `calibration:` section (gptq is calibrated on it; the features of gptq "
                         "and rtn plans are in the calibrated layout)",
                         kQuantMethodNames.name(s.space.quant.back().method)));
  }
  if (space["quant"].present() && s.space.quant.empty()) space["quant"].fail("expected a non-empty list of choices");
  s.space.removable_layers = space.get("removable_layers", s.space.removable_layers);
  s.space.max_removed_layers = space.get("max_removed_layers", s.space.max_removed_layers);
  const ConfigNode budget = space["budget"].check_keys({"kind", "sparsity", "fraction", "tolerance"});
  s.budget.kind = budget.get_enum("kind", kBudgetKindNames, s.budget.kind);
  if (s.budget.kind == BudgetKind::Sparsity) {
    if (budget["fraction"].present())
      budget["fraction"].fail("only a bytes or parameters budget takes a fraction (a sparsity budget: space.budget.sparsity)");
    s.budget.sparsity = budget.get("sparsity", s.budget.sparsity);
  } else {
    if (budget["sparsity"].present())
      budget["sparsity"].fail(fmt::format("a {} budget takes space.budget.fraction, not sparsity",
                                          kBudgetKindNames.name(s.budget.kind)));
    s.budget.fraction = budget.required("fraction").as<double>();
    if (!(s.budget.fraction > 0.0 && s.budget.fraction <= 1.0))
      budget["fraction"].fail(fmt::format("expected a number in (0, 1], found {}", s.budget.fraction));
  }
  s.budget.tolerance = budget.get("tolerance", s.budget.tolerance);
  if (!(s.budget.tolerance >= 0.0)) budget["tolerance"].fail(fmt::format("expected a number >= 0, found {}", s.budget.tolerance));
  s.sample_count = sample.get("count", s.sample_count);
  s.sample_seed = sample.get("seed", s.sample_seed);
  if (const ConfigNode objective = train["objective"]; objective.present())
    s.objective = parse_search_objective(objective.as<std::string>(), objective.where());
  s.folds = train.get("folds", s.folds);
  s.predictor.rounds = train.get("rounds", s.predictor.rounds);
  s.predictor.max_depth = train.get("max_depth", s.predictor.max_depth);
  s.predictor.eta = train.get("eta", s.predictor.eta);
  s.predictor.seed = train.get("seed", s.predictor.seed);
  s.aggregate_features = train.get("aggregate_features", s.aggregate_features);
  s.calibrated_features = calibrated_features(c);
  s.rounds = search.get("rounds", s.rounds);
  s.evaluate_per_round = search.get("evaluate", s.evaluate_per_round);
  s.evolution.generations = search.get("generations", s.evolution.generations);
  s.evolution.population = search.get("population", s.evolution.population);
  s.evolution.parents = search.get("parents", s.evolution.parents);
  s.evolution.crossover_rate = search.get("crossover_rate", s.evolution.crossover_rate);
  s.evolution.seed = search.get("seed", s.evolution.seed);
  if (const ConfigNode acquisition = search["acquisition"]; acquisition.present()) {
    const std::string mode = acquisition.as<std::string>();
    if (mode == "point") s.acquisition.mode = AcquisitionMode::Point;
    else if (mode == "ucb") s.acquisition.mode = AcquisitionMode::Ucb;
    else acquisition.fail(fmt::format("expected point or ucb, found \"{}\"", mode));
  }
  s.acquisition.kappa = search.get("kappa", s.acquisition.kappa);
  s.acquisition.boosters = search.get("boosters", s.acquisition.boosters);
  // The diversity rule is on by default under ucb only, so a point search picks exactly as before.
  s.acquisition.min_distance =
      search.get("min_distance", s.acquisition.mode == AcquisitionMode::Ucb ? 0.5 : s.acquisition.min_distance);
  if (s.sample_count < 1) sample["count"].fail("must be at least 1");
  if (s.folds < 2) train["folds"].fail("must be at least 2");
  if (s.rounds < 0) search["rounds"].fail("must be at least 0");
  if (s.evaluate_per_round < 1) search["evaluate"].fail("must be at least 1");
  if (s.acquisition.boosters < 2) search["boosters"].fail(fmt::format("must be at least 2, got {}", s.acquisition.boosters));
  if (!(s.acquisition.kappa >= 0.0)) search["kappa"].fail(fmt::format("must be at least 0, got {}", s.acquisition.kappa));
  if (!(s.acquisition.min_distance >= 0.0))
    search["min_distance"].fail(fmt::format("must be at least 0, got {}", s.acquisition.min_distance));
  try {
    validate_space(s.space, model, s.budget);
  } catch (const InputError& e) {
    throw InputError(fmt::format("{}: {}", c.file.string(), e.what()));  // the key is named; name the file too
  }
  return s;
}

const SearchObjective& parse_search_objective(const std::string& name, const std::string& where) {
  std::string known;
  for (const SearchObjective& o : kSearchObjectives) {
    if (name == o.name) return o;
    known += (known.empty() ? "" : ", ") + std::string(o.name);
  }
  throw InputError(fmt::format("{}: unknown objective \"{}\" (known: {})", where, name, known));
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
                             bool aggregates, bool calibrated) {
  FeatureMatrix x;
  x.rows = items.size();
  x.cols = predictor_feature_names(model, aggregates, calibrated).size();
  for (const Item& item : items) {
    const std::vector<float> row = predictor_row(features_of(item), model, aggregates, calibrated);
    x.values.insert(x.values.end(), row.begin(), row.end());
  }
  return x;
}

}  // namespace

FeatureMatrix feature_matrix(const std::vector<Pair>& pairs, const ModelConfig& model, bool aggregates, bool calibrated) {
  return predictor_rows(pairs, [](const Pair& p) { return p.features; }, model, aggregates, calibrated);
}

FeatureMatrix feature_matrix(const std::vector<CompressionPlan>& plans, const ModelConfig& model, bool aggregates,
                             bool calibrated) {
  return predictor_rows(
      plans, [&](const CompressionPlan& p) { return plan_features(p, model, calibrated); }, model, aggregates, calibrated);
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
  const FeatureMatrix x = feature_matrix(pairs, model_config, s.aggregate_features, s.calibrated_features);
  const std::vector<std::string> feature_names =
      predictor_feature_names(model_config, s.aggregate_features, s.calibrated_features);
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

// The `baselines` stage (issue 17): the compressions a practitioner tries before a search, each evaluated as an
// ordinary plan at the search's budget (like the sample stage's uniform reference) and recorded by name in
// /search/baselines (src/archive/baselines_archive.hpp):
//   sensitivity    per-component sparsities from the sensitivity sweep's table, more sensitive components pruned
//                  less (search/allocation.hpp: x_i ∝ 1/s_i, water-filled under baselines.max_sparsity to meet
//                  the linear-sparsity budget exactly), pruned with the sweep's method; needs a complete
//                  `sensitivity` stage. Items: the swept (layer, component) pairs among space.components.
//   random_search  random plans of the search space with as many real evaluations as the predictor-guided search
//                  made (sample.count + search.rounds · search.evaluate): the sample stage's plans plus
//                  search.rounds · search.evaluate further draws of the same seeded sampler; its plan is the best
//                  of them by train.objective. The ablation that shows what the predictor buys (Ji et al.).
// Needs a complete `sample` stage; plans complete in the archive are not evaluated again, so a rerun resumes.
// Keys: configs/README.md ("baselines").
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <random>

#include "archive/baselines_archive.hpp"
#include "archive/sensitivity_archive.hpp"
#include "core/errors.hpp"
#include "core/sha256.hpp"
#include "pipelines/search_common.hpp"
#include "search/allocation.hpp"

namespace divprune {

namespace {

struct BaselineSettings {
  bool sensitivity = true;
  bool random_search = true;
  double max_sparsity = 0.9;  // the sensitivity allocation's clip
};

BaselineSettings read_baseline_settings(const RunConfig& c) {
  BaselineSettings b;
  const ConfigNode node = c.root["baselines"].check_keys({"kinds", "max_sparsity"});
  if (const ConfigNode kinds = node["kinds"]; kinds.present()) {
    b.sensitivity = b.random_search = false;
    for (const ConfigNode& k : kinds.elements()) {
      const std::string name = k.as<std::string>();
      if (name == "sensitivity") b.sensitivity = true;
      else if (name == "random_search") b.random_search = true;
      else k.fail(fmt::format("expected sensitivity or random_search, found \"{}\"", name));
    }
  }
  b.max_sparsity = node.get("max_sparsity", b.max_sparsity);
  if (!(b.max_sparsity > 0.0 && b.max_sparsity < 1.0))
    node["max_sparsity"].fail(fmt::format("must lie in (0, 1), got {}", b.max_sparsity));
  return b;
}

// Rounded to 4 decimals: the plan's YAML and float32 features then hold the same value (compress/FEATURES.md),
// and the budget moves by at most 5e-5.
double round4(double x) { return std::round(x * 1e4) / 1e4; }

CompressionPlan sensitivity_plan(const SensitivityRecord& sweep, const SearchSettings& s, const ModelConfig& model,
                                 double max_sparsity) {
  const PruneMethod method = kPruneMethodNames.parse(sweep.method, "sensitivity.method");
  const size_t L = sweep.layers.size(), C = sweep.components.size(), S = sweep.steps.size();
  const double n_tokens = static_cast<double>(sweep.continuation);
  std::vector<int64_t> layer;
  std::vector<Component> component;
  std::vector<double> sensitivity, sizes;
  for (size_t l = 0; l < L; ++l)
    for (size_t c = 0; c < C; ++c) {
      const Component comp = kComponentNames.parse(sweep.components[c], "sensitivity.components");
      if (std::find(s.space.components.begin(), s.space.components.end(), comp) == s.space.components.end()) continue;
      double lost = 0.0;
      for (size_t k = 0; k < S; ++k) lost += 1.0 - sweep.sweep.fdt[(l * C + c) * S + k] / n_tokens;
      const auto shape = component_shape(comp, model);
      layer.push_back(sweep.layers[l]);
      component.push_back(comp);
      sensitivity.push_back(lost / static_cast<double>(S));
      sizes.push_back(static_cast<double>(shape[0] * shape[1]));
    }
  if (layer.empty()) throw InputError("baselines: the sensitivity sweep covers none of space.components");
  const double total = static_cast<double>(plan_size(CompressionPlan::identity(model.num_layers), model).linear_parameters);
  const std::vector<double> x = allocate_inverse_sensitivity(sensitivity, sizes, s.budget.sparsity * total, max_sparsity);
  CompressionPlan plan = CompressionPlan::identity(model.num_layers);
  for (size_t i = 0; i < x.size(); ++i) plan.at(layer[i], component[i]).prune = PruneSpec{method, round4(x[i])};
  return canonical_plan(plan);
}

}  // namespace

void run_baselines_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  const bool coordinator = ctx.topology.is_coordinator();
  SearchSettings s;
  BaselineSettings b;
  std::optional<SampleRecord> sample;
  std::vector<PlanEntry> entries;
  world_step([&] {
    s = read_search_settings(ctx.config, model);
    b = read_baseline_settings(ctx.config);
    if (!coordinator) return;
    sample = read_search_sample(ctx.archive);
    if (!sample) throw InputError("baselines: the archive holds no complete sample stage (list `sample` before `baselines`)");
    if (b.sensitivity) {
      const std::optional<SensitivityRecord> sweep = read_sensitivity(ctx.archive);
      if (!sweep) throw InputError("baselines: the sensitivity baseline needs a complete sensitivity stage (list `sensitivity` "
                                   "before `baselines`, or set baselines.kinds without it)");
      const CompressionPlan plan = sensitivity_plan(*sweep, s, model, b.max_sparsity);
      const double sparsity = plan_size(plan, model).sparsity;
      spdlog::info("baselines: sensitivity-guided plan at linear sparsity {:.4f} (budget {:.3f} ± {:.3f})", sparsity,
                   s.budget.sparsity, s.budget.tolerance);
      entries.push_back(plan_entry("sensitivity", "baselines:sensitivity", plan));
    }
    if (b.random_search) {
      // The sample stage's draws come first from the same seed, so they are the random search's first plans.
      const PlanSampler sampler(s.space, model, s.budget);
      std::mt19937_64 rng(s.sample_seed);
      for (int64_t i = 0; i < s.sample_count; ++i) (void)sampler.sample(rng);
      for (int64_t i = 0; i < s.rounds * s.evaluate_per_round; ++i)
        entries.push_back(plan_entry(fmt::format("random_search_{:03d}", i), "baselines:random_search", sampler.sample(rng)));
    }
  });
  broadcast_entries(entries);
  const std::vector<std::string> ids = evaluate_plan_entries(ctx, entries, "baselines", false);
  world_step([&] {
    if (!coordinator) return;
    BaselinesRecord record;
    record.objective = s.objective.name;
    size_t next = 0;
    if (b.sensitivity) {
      record.names.push_back("sensitivity");
      record.ids.push_back(ids[next++]);
    }
    if (b.random_search) {
      record.random_search_ids = sample->ids;
      record.random_search_ids.insert(record.random_search_ids.end(), ids.begin() + static_cast<std::ptrdiff_t>(next), ids.end());
      const double sign = s.objective.sign();
      const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective, record.random_search_ids);
      const Pair* best = nullptr;
      for (const Pair& p : pairs)
        if (!best || sign * p.value < sign * best->value) best = &p;
      if (best) {
        record.names.push_back("random_search");
        record.ids.push_back(best->id);
      }
    }
    write_search_baselines(ctx.archive, record);
    const std::vector<Pair> named = read_pairs(ctx.archive, s.objective, record.ids);
    for (size_t i = 0; i < record.names.size(); ++i)
      for (const Pair& p : named)
        if (p.id == record.ids[i])
          spdlog::info("baselines: {} [{}] {} {:.4f} at linear sparsity {:.4f}", record.names[i], p.id, s.objective.name,
                       p.value, p.sparsity);
  });
}

}  // namespace divprune

// The `sample` stage: sample.count random plans of the declared search space inside the budget
// (search/space.hpp PlanSampler, redrawn until they fit; deterministic from sample.seed), plus the uniform
// reference at the same budget, evaluated like the evaluate stage (resumable by plan hash). Each result is an
// architecture -> metric pair in the archive (/plans/<id>: features + every metric). Writes /search/sample with
// the ids, the uniform reference and the best random sample by the objective.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <random>

#include "pipelines/search_common.hpp"

namespace divprune {

void run_sample_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  SearchSettings s;
  world_step([&] { s = read_search_settings(ctx.config, model); });
  const PlanSampler sampler(s.space, model, s.budget);
  // Every rank draws the same plans (same seed): nothing to broadcast.
  std::mt19937_64 rng(s.sample_seed);
  std::vector<PlanEntry> entries;
  entries.push_back(plan_entry("uniform", "sample:uniform", sampler.uniform()));
  for (int64_t i = 0; i < s.sample_count; ++i)
    entries.push_back(plan_entry(fmt::format("sample_{:03d}", i), "sample:random", sampler.sample(rng)));
  const std::vector<std::string> ids = evaluate_plan_entries(ctx, entries, "sample", false);
  world_step([&] {
    if (!ctx.topology.is_coordinator()) return;
    const std::vector<std::string> random_ids(ids.begin() + 1, ids.end());
    const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective, random_ids);
    const double sign = s.objective.sign();
    const Pair* best = nullptr;
    for (const Pair& p : pairs)
      if (!best || sign * p.value < sign * best->value) best = &p;
    const std::vector<Pair> uniform = read_pairs(ctx.archive, s.objective, {ids[0]});
    SampleRecord record;
    record.ids = random_ids;
    record.uniform_id = ids[0];
    record.best_random_id = best ? best->id : std::string();
    record.objective = s.objective.name;
    record.budget_sparsity = s.budget.kind == BudgetKind::Sparsity ? s.budget.sparsity : std::nan("");
    record.budget_tolerance = s.budget.tolerance;
    record.budget_kind = std::string(kBudgetKindNames.name(s.budget.kind));
    if (s.budget.kind != BudgetKind::Sparsity) record.budget_fraction = s.budget.fraction;
    record.seed = static_cast<int64_t>(s.sample_seed);
    write_search_sample(ctx.archive, record);
    if (best && !uniform.empty())
      spdlog::info("sample: {} random plans at {}; {}: uniform {:.4f}, best random {:.4f} ({} [{}])", pairs.size(),
                   budget_description(s.budget), s.objective.name, uniform[0].value, best->value, best->name, best->id);
  });
}

}  // namespace divprune

// The `search` stage: search.rounds rounds of predictor-guided evolution (search/evolution.hpp). Each round fits
// the predictor on the pairs so far (the sample stage's plans, the uniform reference and earlier rounds' plans),
// evolves from the pairs inside the budget scored by the prediction (negated for mean FDT, which is maximised),
// evaluates the best search.evaluate new plans for real through the evaluate machinery (resumable by plan hash)
// and stores predicted vs measured in /search/rounds/<r>. search.acquisition: ucb scores the evolution by an
// ensemble's optimistic bound instead, and both modes keep a round's picks search.min_distance apart
// (search/acquisition.hpp). Then the Pareto front (linear sparsity vs objective)
// over the search's pairs (sample, uniform, rounds), the best searched plan, and a summary table on stdout.
// /search/best and /search/pareto are removed when the stage starts, so an interrupted search never leaves
// a summary of an earlier run beside newer rounds.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/sha256.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/search_common.hpp"

namespace divprune {

void run_search_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  const bool coordinator = ctx.topology.is_coordinator();
  SearchSettings s;
  std::vector<std::string> pool;  // ids of the pairs so far (coordinator)
  std::string uniform_id, best_random_id;
  world_step([&] {
    s = read_search_settings(ctx.config, model);
    if (!coordinator) return;
    const std::optional<SampleRecord> sample = read_search_sample(ctx.archive);
    if (!sample) throw InputError("search: the archive holds no complete sample stage (list `sample` before `search`)");
    pool = sample->ids;
    uniform_id = sample->uniform_id;
    best_random_id = sample->best_random_id;
    pool.push_back(uniform_id);
  });
  world_step([&] {
    if (!coordinator) return;
    clear_search_outcome(ctx.archive);
  });
  const PlanSampler sampler(s.space, model, s.budget);
  const double sign = s.objective.sign();
  std::vector<std::string> searched;
  std::map<std::string, double> predicted_of;  // searched plan id -> the prediction it was chosen by (coordinator)

  for (int64_t r = 0; r < s.rounds; ++r) {
    int32_t done = 0;
    std::vector<PlanEntry> entries;
    std::vector<double> predicted;
    world_step([&] {
      if (!coordinator) return;
      if (const std::optional<RoundRecord> round = read_search_round(ctx.archive, r)) {
        const auto& ids = round->ids;
        for (size_t i = 0; i < ids.size() && i < round->predicted.size(); ++i) predicted_of[ids[i]] = round->predicted[i];
        pool.insert(pool.end(), ids.begin(), ids.end());
        searched.insert(searched.end(), ids.begin(), ids.end());
        done = 1;
        spdlog::info("search: round {} is complete in the archive, skipped", r);
        return;
      }
      const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective, pool);
      std::optional<Predictor> predictor;
      const PredictorScores scores = train_and_store(ctx.archive, pairs, s, model, &predictor);
      spdlog::info("search: round {}: predictor on {} pairs, CV R² {:.3f}, Spearman ρ {:.3f}, MAE {:.4g}", r, pairs.size(),
                   scores.r2, scores.spearman, scores.mae);
      std::vector<CompressionPlan> seeds;
      std::set<std::string> known;
      for (const Pair& p : pairs) {
        known.insert(p.id);
        CompressionPlan plan = plan_from_features(p.features, model, s.calibrated_features);
        if (sampler.fits(plan)) seeds.push_back(std::move(plan));
      }
      EvolutionParams params = s.evolution;
      params.seed = s.evolution.seed + static_cast<uint64_t>(r);
      // Point: the evolution minimises the predicted loss. UCB: it minimises the ensemble's optimistic bound
      // sign·mean − κ·std (search/acquisition.hpp), and a plan's `predicted` is the ensemble mean.
      std::optional<PredictorEnsemble> ensemble;
      if (s.acquisition.mode == AcquisitionMode::Ucb) {
        std::vector<double> y;
        for (const Pair& p : pairs) y.push_back(p.value);
        ensemble = PredictorEnsemble::train(feature_matrix(pairs, model, s.aggregate_features, s.calibrated_features), y, s.predictor,
                                            s.acquisition.boosters);
      }
      const auto scorer = [&](const std::vector<CompressionPlan>& plans) {
        const FeatureMatrix x = feature_matrix(plans, model, s.aggregate_features, s.calibrated_features);
        if (!ensemble) {
          std::vector<double> y = predictor->predict(x);
          for (double& v : y) v *= sign;
          return y;
        }
        const PredictorEnsemble::Prediction p = ensemble->predict(x);
        std::vector<double> y(p.mean.size());
        for (size_t i = 0; i < y.size(); ++i) y[i] = sign * p.mean[i] - s.acquisition.kappa * p.std[i];
        return y;
      };
      const std::vector<ScoredPlan> population = evolve(sampler, seeds, scorer, params);
      // Best acquisition score first; plans evaluated already (or repeated) are not eligible, and the diversity
      // rule keeps the round's picks at least search.min_distance apart.
      std::vector<CompressionPlan> candidates;
      std::vector<bool> eligible;
      for (const ScoredPlan& sp : population) {
        candidates.push_back(sp.plan);
        const PlanEntry e = plan_entry("candidate", "search", sp.plan);
        eligible.push_back(known.insert(plan_id_from_hash(plan_hash(ctx, sp.plan, e.yaml, "search"))).second);
      }
      FeatureMatrix plan_rows{candidates.size(), static_cast<size_t>(plan_feature_count(model)), {}};
      for (const CompressionPlan& c : candidates) {
        const std::vector<float> f = plan_features(c, model, s.calibrated_features);
        plan_rows.values.insert(plan_rows.values.end(), f.begin(), f.end());
      }
      const std::vector<size_t> picks =
          pick_diverse(plan_rows, eligible, static_cast<size_t>(s.evaluate_per_round), s.acquisition.min_distance);
      std::vector<double> std_of_pick;
      if (ensemble && !picks.empty()) {
        std::vector<CompressionPlan> picked_plans;
        for (size_t i : picks) picked_plans.push_back(candidates[i]);
        const PredictorEnsemble::Prediction p = ensemble->predict(feature_matrix(picked_plans, model, s.aggregate_features, s.calibrated_features));
        predicted = p.mean;
        std_of_pick = p.std;
      } else {
        for (size_t i : picks) predicted.push_back(sign * population[i].score);
      }
      for (size_t k = 0; k < picks.size(); ++k) {
        entries.push_back(plan_entry(fmt::format("search_r{}_{:02d}", r, k), fmt::format("search:round{}", r), candidates[picks[k]]));
        if (!std_of_pick.empty())
          spdlog::info("search: round {} pick {}: ensemble mean {} {:.4f} ± {:.4f} (std over {} boosters)", r, k,
                       s.objective.name, predicted[k], std_of_pick[k], s.acquisition.boosters);
      }
      if (static_cast<int64_t>(picks.size()) < s.evaluate_per_round && s.acquisition.min_distance > 0.0)
        spdlog::info("search: round {}: {} plans at least {} apart among {} candidates", r, picks.size(),
                     s.acquisition.min_distance, candidates.size());
      if (entries.empty()) spdlog::warn("search: round {} found no plan that was not evaluated already", r);
    });
    broadcast_value(done);
    if (done) continue;
    broadcast_entries(entries);
    if (entries.empty()) continue;
    const std::vector<std::string> ids = evaluate_plan_entries(ctx, entries, "search", false);
    world_step([&] {
      if (!coordinator) return;
      // One measured value per id, in order: NaN for a plan archived as failed (it has no pair).
      std::map<std::string, double> value_of;
      for (const Pair& p : read_pairs(ctx.archive, s.objective, ids)) value_of[p.id] = p.value;
      std::vector<double> measured;
      for (const std::string& id : ids) measured.push_back(value_of.count(id) ? value_of.at(id) : std::nan(""));
      write_search_round(ctx.archive, r, RoundRecord{ids, predicted, measured});
      for (size_t i = 0; i < ids.size() && i < measured.size(); ++i)
        spdlog::info("search: round {} plan {} [{}]: predicted {} {:.4f}, measured {:.4f}", r, entries[i].name, ids[i],
                     s.objective.name, predicted[i], measured[i]);
      for (size_t i = 0; i < ids.size() && i < predicted.size(); ++i) predicted_of[ids[i]] = predicted[i];
      pool.insert(pool.end(), ids.begin(), ids.end());
      searched.insert(searched.end(), ids.begin(), ids.end());
    });
  }

  world_step([&] {
    if (!coordinator) return;
    // Refit on every pair, the Pareto front over every complete plan, the best searched plan.
    const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective, pool);
    const PredictorScores scores = train_and_store(ctx.archive, pairs, s, model, nullptr);
    // The front over the search's plans (not sensitivity-sweep or evaluate plans sharing the archive).
    std::vector<const Pair*> front;
    for (const Pair& p : pairs) {
      bool dominated = false;
      for (const Pair& q : pairs)
        if (q.sparsity >= p.sparsity && sign * q.value <= sign * p.value &&
            (q.sparsity > p.sparsity || sign * q.value < sign * p.value))
          dominated = true;
      if (!dominated) front.push_back(&p);
    }
    std::sort(front.begin(), front.end(), [](const Pair* a, const Pair* b) { return a->sparsity < b->sparsity; });
    ParetoRecord pareto;
    for (const Pair* p : front) {
      pareto.ids.push_back(p->id);
      pareto.sparsity.push_back(p->sparsity);
      pareto.objective.push_back(p->value);
    }
    const std::vector<Pair> searched_pairs = read_pairs(ctx.archive, s.objective, searched);
    const std::vector<Pair> refs = read_pairs(ctx.archive, s.objective, {uniform_id});
    const std::vector<Pair> best_random = read_pairs(ctx.archive, s.objective, {best_random_id});
    const Pair* best = nullptr;
    for (const Pair& p : searched_pairs)
      if (!best || sign * p.value < sign * best->value) best = &p;
    std::optional<BestRecord> best_record;
    if (best)
      best_record = BestRecord{best->id,
                               best->name,
                               ctx.archive.read_plan_yaml(best->id),
                               best->value,
                               predicted_of.count(best->id) ? predicted_of.at(best->id) : std::nan(""),
                               best->sparsity};
    write_search_outcome(ctx.archive, pareto, best_record);

    fmt::print("\nsearch summary: {} at {} ({} pairs; predictor CV R² {:.3f}, Spearman ρ {:.3f}, "
               "MAE {:.4g})\n",
               s.objective.name, budget_description(s.budget), pairs.size(), scores.r2, scores.spearman, scores.mae);
    fmt::print("{:<14} {:<20} {:>18} {:>10}\n", "reference", "plan", "id", "sparsity");
    auto row = [&](const char* what, const Pair* p) {
      if (!p) return;
      // Under a bytes / parameters budget the plan's measure too (linear sparsity alone hides int8).
      std::string measure;
      if (s.budget.kind != BudgetKind::Sparsity)
        measure = fmt::format("   {} {:.4f}", kBudgetKindNames.name(s.budget.kind),
                              budget_measure(plan_from_features(p->features, model, s.calibrated_features), model,
                                             s.budget.kind));
      fmt::print("{:<14} {:<20} {:>18} {:>10.4f}   {} {:.4f}{}\n", what, p->name, p->id, p->sparsity, s.objective.name,
                 p->value, measure);
    };
    row("uniform", refs.empty() ? nullptr : &refs[0]);
    row("best random", best_random.empty() ? nullptr : &best_random[0]);
    row("best searched", best);
    if (best && predicted_of.count(best->id))
      fmt::print("{:<14} predicted {} {:.4f} when chosen, measured {:.4f}\n", "", s.objective.name, predicted_of.at(best->id),
                 best->value);
    fmt::print("pareto front (sparsity, {}):", s.objective.name);
    for (size_t i = 0; i < front.size(); ++i) fmt::print(" ({:.3f}, {:.4f})", pareto.sparsity[i], pareto.objective[i]);
    fmt::print("\n");
    std::fflush(stdout);
  });
}

}  // namespace divprune

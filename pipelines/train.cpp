// The `train` stage: the search's predictor (XGBoost on the coordinator) regresses train.objective from the
// features of the search's pairs (the sampled plans, the uniform reference and the plans of complete search
// rounds: the population `search` fits on; every complete plan of the archive when there is no sample stage, e.g.
// after `evaluate` only). Sensitivity-sweep plans lie far outside the budget and are left out. k-fold
// cross-validation scores (R², Spearman ρ, MAE), the model JSON and the feature importances go to
// /search/predictor.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pipelines/search_common.hpp"

namespace divprune {

void run_train_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  world_step([&] {
    const SearchSettings s = read_search_settings(ctx.config, model);
    if (!ctx.topology.is_coordinator()) return;
    const std::vector<std::string> pool = search_pool_ids(ctx.archive);
    if (pool.empty()) spdlog::info("train: no complete sample stage in the archive: fitting on every complete plan");
    const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective, pool);
    const PredictorScores scores = train_and_store(ctx.archive, pairs, s, model, nullptr);
    spdlog::info("train: predictor of {} on {} pairs, {}-fold CV: R² {:.3f}, Spearman ρ {:.3f}, MAE {:.4g}", s.objective.name,
                 pairs.size(), scores.folds, scores.r2, scores.spearman, scores.mae);
  });
}

}  // namespace divprune

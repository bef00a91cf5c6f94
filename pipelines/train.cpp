// The `train` stage: the search's predictor (XGBoost on the coordinator) regresses train.objective from the
// features of every complete plan in the archive; k-fold cross-validation scores (R², Spearman ρ, MAE), the
// model JSON and the feature importances go to /search/predictor.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "pipelines/search_common.hpp"

namespace divprune {

void run_train_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  collective_step(MPI_COMM_WORLD, [&] {
    const SearchSettings s = read_search_settings(ctx.config, model);
    if (!ctx.topology.is_coordinator()) return;
    const std::vector<Pair> pairs = read_pairs(ctx.archive, s.objective);
    const PredictorScores scores = train_and_store(ctx.archive, pairs, s, plan_feature_names(model), nullptr);
    spdlog::info("train: predictor of {} on {} pairs, {}-fold CV: R² {:.3f}, Spearman ρ {:.3f}, MAE {:.4g}", s.objective,
                 pairs.size(), scores.folds, scores.r2, scores.spearman, scores.mae);
  });
}

}  // namespace divprune

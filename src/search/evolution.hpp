#pragma once
// Predictor-guided evolutionary search (Ji et al.): a population of plans inside the budget is scored by a
// cheap function (the XGBoost predictor, or any scorer), the best become parents, and mutation + crossover
// (both keeping plans inside the budget) make the next generation. Lower scores are better: a metric to be
// maximised (mean FDT) is negated by the caller.
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "search/space.hpp"

namespace divprune {

struct EvolutionParams {
  int generations = 40;
  int population = 64;   // plans per generation
  int parents = 16;      // best plans kept and bred
  double crossover_rate = 0.5;
  uint64_t seed = 0;
};

struct ScoredPlan {
  CompressionPlan plan;
  double score = 0.0;
};

// Scores a batch of plans (lower is better).
using PlanScorer = std::function<std::vector<double>(const std::vector<CompressionPlan>&)>;

// Evolves from `seeds` (plans inside the budget, e.g. the evaluated samples) and returns the final population,
// best first, without duplicate plans.
std::vector<ScoredPlan> evolve(const PlanSampler& sampler, const std::vector<CompressionPlan>& seeds,
                               const PlanScorer& scorer, const EvolutionParams& params);

}  // namespace divprune

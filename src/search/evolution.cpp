#include "search/evolution.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace divprune {

namespace {

void sort_unique(std::vector<ScoredPlan>& plans) {
  std::stable_sort(plans.begin(), plans.end(), [](const ScoredPlan& a, const ScoredPlan& b) { return a.score < b.score; });
  std::vector<ScoredPlan> unique;
  for (auto& p : plans) {
    const bool seen = std::any_of(unique.begin(), unique.end(), [&](const ScoredPlan& u) { return u.plan == p.plan; });
    if (!seen) unique.push_back(std::move(p));
  }
  plans = std::move(unique);
}

}  // namespace

std::vector<ScoredPlan> evolve(const PlanSampler& sampler, const std::vector<CompressionPlan>& seeds,
                               const PlanScorer& scorer, const EvolutionParams& params) {
  EXPECTS(params.population > 0 && params.parents > 0 && params.parents <= params.population, "evolution sizes");
  std::mt19937_64 rng(params.seed);
  std::vector<CompressionPlan> batch;
  for (const auto& s : seeds)
    if (sampler.fits(s)) batch.push_back(canonical_plan(s));
  while (static_cast<int>(batch.size()) < params.population) batch.push_back(sampler.sample(rng));
  std::vector<ScoredPlan> population;
  const std::vector<double> first = scorer(batch);
  for (size_t i = 0; i < batch.size(); ++i) population.push_back({batch[i], first[i]});
  sort_unique(population);
  for (int generation = 0; generation < params.generations; ++generation) {
    const size_t parents = std::min<size_t>(static_cast<size_t>(params.parents), population.size());
    std::uniform_int_distribution<size_t> pick(0, parents - 1);
    batch.clear();
    while (static_cast<int>(batch.size()) < params.population) {
      const CompressionPlan& a = population[pick(rng)].plan;
      if (std::bernoulli_distribution(params.crossover_rate)(rng)) {
        batch.push_back(sampler.crossover(a, population[pick(rng)].plan, rng));
      } else {
        batch.push_back(sampler.mutate(a, rng));
      }
    }
    const std::vector<double> scores = scorer(batch);
    // Elitism: parents compete with their children.
    population.resize(parents);
    for (size_t i = 0; i < batch.size(); ++i) population.push_back({batch[i], scores[i]});
    sort_unique(population);
  }
  return population;
}

}  // namespace divprune

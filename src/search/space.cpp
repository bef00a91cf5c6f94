#include "search/space.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "compress/storage.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {
constexpr int kMaxAttempts = 20000;  // redraws before a budget is declared unreachable for this space
}

double budget_measure(const CompressionPlan& plan, const ModelConfig& config, BudgetKind kind) {
  switch (kind) {
    case BudgetKind::Sparsity: return plan_size(plan, config).sparsity;
    case BudgetKind::Bytes: return plan_storage_bytes(plan, config).fraction();
    case BudgetKind::Parameters:
      return static_cast<double>(plan_size(plan, config).parameters) / static_cast<double>(config.parameter_count());
  }
  return 0.0;
}

std::string budget_description(const Budget& budget) {
  switch (budget.kind) {
    case BudgetKind::Sparsity: return fmt::format("linear sparsity {:.3f} ± {:.3f}", budget.sparsity, budget.tolerance);
    case BudgetKind::Bytes:
      return fmt::format("stored bytes {:.3f} ± {:.3f} of dense fp16", budget.fraction, budget.tolerance);
    case BudgetKind::Parameters:
      return fmt::format("parameters {:.3f} ± {:.3f} of the model", budget.fraction, budget.tolerance);
  }
  return "?";
}

bool quant_choice_applies(const QuantChoice& q, Component c, const ModelConfig& config) {
  if (!has_grid(q.method) || q.params.group_size == -1) return true;
  return q.params.group_size > 0 && component_shape(c, config)[1] % q.params.group_size == 0;
}

bool within_budget(const CompressionPlan& plan, const ModelConfig& config, const Budget& budget) {
  return std::fabs(budget_measure(plan, config, budget.kind) - budget.target()) <= budget.tolerance + 1e-12;
}

void validate_space(const SearchSpace& space, const ModelConfig& config, const Budget& budget) {
  if (space.sparsity_levels.empty()) throw InputError("space.sparsity_levels: at least one level is needed");
  for (double s : space.sparsity_levels)
    if (!(s >= 0.0 && s < 1.0)) throw InputError(fmt::format("space.sparsity_levels: {} is outside [0, 1)", s));
  if (space.methods.empty()) throw InputError("space.methods: at least one prune method is needed");
  if (space.int8 && !space.quant.empty())
    throw InputError("space: give `int8: true` or a `quant` list (which may hold int8), not both");
  for (int64_t l : space.removable_layers)
    if (l < 0 || l >= config.num_layers)
      throw InputError(fmt::format("space.removable_layers: layer {} is outside [0, {})", l, config.num_layers));
  if (space.max_removed_layers >= config.num_layers)
    throw InputError("space.max_removed_layers: at least one layer must remain");
  if (budget.kind == BudgetKind::Sparsity) {
    if (!(budget.sparsity >= 0.0 && budget.sparsity < 1.0) || !(budget.tolerance >= 0.0))
      throw InputError(fmt::format("space.budget: sparsity must be in [0, 1) and tolerance at least 0, found sparsity {} "
                                   "tolerance {}", budget.sparsity, budget.tolerance));
  } else {
    // A fraction of the dense model: above 0 (something must remain) and at most 1 (no plan is larger).
    if (!(budget.fraction > 0.0 && budget.fraction <= 1.0))
      throw InputError(fmt::format("space.budget.fraction: expected a number in (0, 1] for a {} budget, found {}",
                                   kBudgetKindNames.name(budget.kind), budget.fraction));
    if (!(budget.tolerance >= 0.0))
      throw InputError(fmt::format("space.budget.tolerance: expected a number >= 0, found {}", budget.tolerance));
  }
}

PlanSampler::PlanSampler(SearchSpace space, ModelConfig config, Budget budget)
    : space_(std::move(space)), config_(std::move(config)), budget_(budget) {
  validate_space(space_, config_, budget_);
  std::sort(space_.sparsity_levels.begin(), space_.sparsity_levels.end());
  center_ = level_center();
}

double PlanSampler::level_center() const {
  const auto& levels = space_.sparsity_levels;
  if (budget_.kind == BudgetKind::Sparsity)
    return static_cast<double>(std::lower_bound(levels.begin(), levels.end(), budget_.sparsity) - levels.begin());
  // Expected measure with every searched component at level k (magnitude: a method every component takes).
  const auto measure_at = [&](size_t k, bool int8) {
    CompressionPlan plan = CompressionPlan::identity(config_.num_layers);
    for (int64_t l = 0; l < config_.num_layers; ++l)
      for (Component c : space_.components) {
        ComponentPlan& cp = plan.at(l, c);
        if (levels[k] > 0.0) cp.prune = PruneSpec{PruneMethod::Magnitude, levels[k]};
        if (int8) cp.quant = QuantMethod::Int8;
      }
    return budget_measure(plan, config_, budget_.kind);
  };
  std::vector<double> m;
  for (size_t k = 0; k < levels.size(); ++k)
    m.push_back(space_.int8 ? 0.5 * (measure_at(k, false) + measure_at(k, true)) : measure_at(k, false));
  // m falls with k; the center is where it crosses the target.
  if (budget_.fraction >= m.front()) return 0.0;
  for (size_t k = 0; k + 1 < m.size(); ++k)
    if (budget_.fraction >= m[k + 1])
      return static_cast<double>(k) + (m[k] - budget_.fraction) / std::max(m[k] - m[k + 1], 1e-12);
  return static_cast<double>(m.size() - 1);
}

void PlanSampler::draw_component(CompressionPlan& plan, int64_t layer, Component c, double center,
                                 std::mt19937_64& rng) const {
  std::vector<PruneMethod> allowed;
  for (PruneMethod m : space_.methods)
    if (prune_method_applies(m, c)) allowed.push_back(m);
  ComponentPlan& target = plan.at(layer, c);
  target = ComponentPlan{};
  if (allowed.empty()) return;
  const PruneMethod method = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
  const auto& levels = space_.sparsity_levels;
  std::normal_distribution<double> jitter(0.0, 1.5);
  const long index = std::clamp(std::lround(center + jitter(rng)), 0L, static_cast<long>(levels.size()) - 1);
  double sparsity = levels[static_cast<size_t>(index)];
  if (method == PruneMethod::TwoFour) sparsity = 0.5;
  if (method == PruneMethod::Heads) {  // whole KV heads only
    sparsity = std::round(sparsity * config_.num_kv_heads) / static_cast<double>(config_.num_kv_heads);
    if (sparsity >= 1.0) sparsity = (config_.num_kv_heads - 1) / static_cast<double>(config_.num_kv_heads);
  }
  if (sparsity > 0.0) target.prune = PruneSpec{method, sparsity};
  if (!space_.quant.empty()) {
    std::vector<const QuantChoice*> fitting;
    for (const QuantChoice& q : space_.quant)
      if (quant_choice_applies(q, c, config_)) fitting.push_back(&q);
    if (fitting.empty()) return;
    const QuantChoice& q = *fitting[std::uniform_int_distribution<size_t>(0, fitting.size() - 1)(rng)];
    target.quant = q.method;
    target.quant_params = q.params;
  } else if (space_.int8 && std::bernoulli_distribution(0.5)(rng)) {
    target.quant = QuantMethod::Int8;
  }
}

CompressionPlan PlanSampler::sample(std::mt19937_64& rng) const {
  std::uniform_real_distribution<double> spread(-2.0, 2.0);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    CompressionPlan plan = CompressionPlan::identity(config_.num_layers);
    const int64_t drops = space_.removable_layers.empty()
                              ? 0
                              : std::uniform_int_distribution<int64_t>(0, space_.max_removed_layers)(rng);
    std::vector<int64_t> removable = space_.removable_layers;
    std::shuffle(removable.begin(), removable.end(), rng);
    for (int64_t i = 0; i < drops && i < static_cast<int64_t>(removable.size()); ++i)
      plan.layers[static_cast<size_t>(removable[static_cast<size_t>(i)])].removed = true;
    // Around where the target sits among the levels (center_), so few plans are redrawn.
    const double center = center_ + spread(rng);
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      if (plan.layers[static_cast<size_t>(l)].removed) continue;
      for (Component c : space_.components) draw_component(plan, l, c, center, rng);
    }
    plan = canonical_plan(plan);
    if (fits(plan)) return plan;
  }
  if (budget_.kind == BudgetKind::Sparsity)
    throw InputError(fmt::format("search: no plan of the space reaches sparsity {} ± {} in {} draws; widen "
                                 "space.sparsity_levels or space.budget.tolerance",
                                 budget_.sparsity, budget_.tolerance, kMaxAttempts));
  throw InputError(fmt::format("search: no plan of the space reaches {} in {} draws; widen space.sparsity_levels or "
                               "space.budget.tolerance",
                               budget_description(budget_), kMaxAttempts));
}

CompressionPlan PlanSampler::uniform() const {
  CompressionPlan plan = CompressionPlan::identity(config_.num_layers);
  if (budget_.kind != BudgetKind::Sparsity) {
    PruneMethod method = space_.methods.front();
    if (method == PruneMethod::Heads || method == PruneMethod::Channels || method == PruneMethod::TwoFour)
      method = PruneMethod::Magnitude;
    const auto at = [&](double s) {
      CompressionPlan p = CompressionPlan::identity(config_.num_layers);
      if (s > 0.0)
        for (int64_t l = 0; l < config_.num_layers; ++l)
          for (Component c : space_.components) p.at(l, c).prune = PruneSpec{method, s};
      return p;
    };
    // The measure never rises with the sparsity: bisect for the smallest sparsity (in steps of 1e-4, so the
    // plan's YAML and float32 features hold the same value) whose measure is at most the target.
    int64_t lo = 0, hi = 9900;  // sparsity · 1e4
    if (budget_measure(at(0.0), config_, budget_.kind) <= budget_.fraction) return at(0.0);
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      if (budget_measure(at(static_cast<double>(mid) * 1e-4), config_, budget_.kind) <= budget_.fraction) hi = mid;
      else lo = mid;
    }
    return at(static_cast<double>(hi) * 1e-4);
  }
  // The uniform sparsity that meets the budget exactly over the searched components (not only a level).
  int64_t searched = 0;
  for (Component c : space_.components) {
    const auto shape = component_shape(c, config_);
    searched += shape[0] * shape[1];
  }
  const double total = static_cast<double>(config_.num_layers) * static_cast<double>(config_.layer_linear_parameters());
  const double sparsity = std::min(0.99, budget_.sparsity * total / (static_cast<double>(searched) * config_.num_layers));
  PruneMethod method = space_.methods.front();
  if (method == PruneMethod::Heads || method == PruneMethod::Channels || method == PruneMethod::TwoFour)
    method = PruneMethod::Magnitude;  // a uniform reference must apply to every component alike
  for (int64_t l = 0; l < config_.num_layers; ++l)
    for (Component c : space_.components) plan.at(l, c).prune = PruneSpec{method, sparsity};
  return plan;
}

CompressionPlan PlanSampler::repair(CompressionPlan candidate, std::mt19937_64& rng) const {
  candidate = canonical_plan(candidate);
  if (fits(candidate)) return candidate;
  // Nudge one component at a time toward the budget; give up and redraw after a while.
  const auto& levels = space_.sparsity_levels;
  const bool sparsity_kind = budget_.kind == BudgetKind::Sparsity;
  for (int attempt = 0; attempt < 200; ++attempt) {
    // up: the plan must shrink (more sparsity; fewer bytes or parameters).
    const double current = budget_measure(candidate, config_, budget_.kind);
    const bool up = sparsity_kind ? current < budget_.sparsity : current > budget_.fraction;
    const int64_t layer = std::uniform_int_distribution<int64_t>(0, config_.num_layers - 1)(rng);
    if (candidate.layers[static_cast<size_t>(layer)].removed || space_.components.empty()) continue;
    const Component c = space_.components[std::uniform_int_distribution<size_t>(0, space_.components.size() - 1)(rng)];
    ComponentPlan& target = candidate.at(layer, c);
    // Under a bytes budget int8 is the other lever: half the nudges switch it (on to shrink, off to grow).
    if (budget_.kind == BudgetKind::Bytes && space_.int8 && std::bernoulli_distribution(0.5)(rng)) {
      if (up == (target.quant == QuantMethod::Int8) || (target.quant != QuantMethod::None && target.quant != QuantMethod::Int8))
        continue;
      target.quant = up ? QuantMethod::Int8 : QuantMethod::None;
      candidate = canonical_plan(candidate);
      if (fits(candidate)) return candidate;
      continue;
    }
    const double s = target.prune ? target.prune->sparsity : 0.0;
    const auto pos = std::lower_bound(levels.begin(), levels.end(), s - 1e-9) - levels.begin();
    const long next = up ? pos + 1 : pos - 1;
    if (next < 0 || next >= static_cast<long>(levels.size())) continue;
    const PruneMethod method = target.prune ? target.prune->method : PruneMethod::Magnitude;
    // Methods whose sparsity is free (not 2:4, whole heads): unstructured wanda / sparsegpt too.
    if (method != PruneMethod::Magnitude && method != PruneMethod::MagnitudeRow && method != PruneMethod::Channels &&
        method != PruneMethod::Wanda && method != PruneMethod::SparseGpt)
      continue;
    if (!prune_method_applies(method, c)) continue;
    if (levels[static_cast<size_t>(next)] == 0.0) target.prune.reset();
    else target.prune = PruneSpec{method, levels[static_cast<size_t>(next)]};
    candidate = canonical_plan(candidate);
    if (fits(candidate)) return candidate;
  }
  return sample(rng);
}

CompressionPlan PlanSampler::mutate(const CompressionPlan& parent, std::mt19937_64& rng) const {
  CompressionPlan child = parent;
  const auto& levels = space_.sparsity_levels;
  const int changes = std::uniform_int_distribution<int>(1, 3)(rng);
  for (int i = 0; i < changes; ++i) {
    if (!space_.removable_layers.empty() && std::bernoulli_distribution(0.1)(rng)) {
      // Flip one removable layer, keeping the count within the limit.
      const int64_t l = space_.removable_layers[std::uniform_int_distribution<size_t>(0, space_.removable_layers.size() - 1)(rng)];
      LayerPlan& layer = child.layers[static_cast<size_t>(l)];
      if (layer.removed) {
        layer.removed = false;
        for (Component c : space_.components) draw_component(child, l, c, center_, rng);
      } else if (static_cast<int64_t>(child.dropped_layers().size()) < space_.max_removed_layers) {
        layer.removed = true;
      }
      continue;
    }
    if (space_.components.empty()) break;
    const int64_t l = std::uniform_int_distribution<int64_t>(0, config_.num_layers - 1)(rng);
    if (child.layers[static_cast<size_t>(l)].removed) continue;
    const Component c = space_.components[std::uniform_int_distribution<size_t>(0, space_.components.size() - 1)(rng)];
    const ComponentPlan& current = child.at(l, c);
    const double s = current.prune ? current.prune->sparsity : 0.0;
    const double center = static_cast<double>(std::lower_bound(levels.begin(), levels.end(), s - 1e-9) - levels.begin());
    draw_component(child, l, c, center, rng);
  }
  return repair(child, rng);
}

CompressionPlan PlanSampler::crossover(const CompressionPlan& a, const CompressionPlan& b, std::mt19937_64& rng) const {
  CompressionPlan child = a;
  for (size_t l = 0; l < child.layers.size(); ++l)
    if (std::bernoulli_distribution(0.5)(rng)) child.layers[l] = b.layers[l];
  if (static_cast<int64_t>(child.dropped_layers().size()) > space_.max_removed_layers) child = a;
  return repair(child, rng);
}

}  // namespace divprune

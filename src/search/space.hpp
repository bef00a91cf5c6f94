#pragma once
// The search space of the pruning search and its budget. A sampled plan chooses, for every layer and
// component, a prune method among those allowed and a sparsity among the declared levels, a quantization (int8
// on or off, or one of a declared list of choices), and which removable layers to drop. Plans outside the budget are redrawn, never clipped, so every plan a run
// evaluates was drawn from the declared space.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compress/plan.hpp"

namespace divprune {

// One quantization a component may get (space.quant): none, int8, or a grid quantizer with its parameters
// (compress/plan.hpp QuantParams; gptq needs the run's calibration, rtn its calibrated feature layout).
struct QuantChoice {
  QuantMethod method = QuantMethod::None;
  QuantParams params{};
  bool operator==(const QuantChoice&) const = default;
};

// A grid quantizer fits a component when its group size divides the component's input columns (or is -1);
// none and int8 fit every component. The sampler draws among the choices that fit (as among the prune methods
// that apply), so `gptq-4` (group 128) can be in the space of a model whose down_proj has 688 columns.
bool quant_choice_applies(const QuantChoice& q, Component c, const ModelConfig& config);

struct SearchSpace {
  std::vector<double> sparsity_levels = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8};
  std::vector<PruneMethod> methods = {PruneMethod::Magnitude};  // per component, among those that apply to it
  std::vector<Component> components = {kAllComponents.begin(), kAllComponents.end()};  // others stay dense
  bool int8 = false;                      // may a component be quantized to int8 (a fair coin per component)
  // Quantization choices, one drawn uniformly per component (instead of `int8`, which is the same as {none, int8}
  // but keeps its original draws, so searches configured with `int8` sample the plans they always did). The
  // budget is on sparsity only: quantization does not count toward it, as int8 never did.
  std::vector<QuantChoice> quant;
  std::vector<int64_t> removable_layers;  // layers that may be dropped (LayerChop)
  int64_t max_removed_layers = 0;
};

// What a budget constrains (space.budget.kind). Each kind is one number per plan, its measure:
//   sparsity    overall linear sparsity (compress/plan.hpp PlanSize::sparsity); quantization is free
//   bytes       bytes of the linear projections in the storage format of compress/storage.hpp over the dense fp16
//               bytes (StorageBytes::fraction): int8 and grid quantizers cost their bits, pruned entries cost a
//               bitmap, so quantizing and pruning trade against each other
//   parameters  parameters of the whole model (embeddings, norms, lm_head included) neither in a removed layer nor
//               zeroed by a prune (PlanSize::parameters) over the model's parameter count: CHOP's "equal parameter
//               count", under which removing a layer costs what pruning as many entries costs
enum class BudgetKind { Sparsity = 0, Bytes, Parameters };
inline constexpr auto kBudgetKindNames = enum_names<BudgetKind>(
    "budget kind", {{BudgetKind::Sparsity, "sparsity"}, {BudgetKind::Bytes, "bytes"}, {BudgetKind::Parameters, "parameters"}});
static_assert(kBudgetKindNames.names_unique());

// A plan is inside the budget when its measure lies within target ± tolerance: sparsity for kind sparsity (the
// linear sparsity), fraction for the other kinds (a fraction of the dense model's bytes or parameters).
struct Budget {
  double sparsity = 0.5;
  double tolerance = 0.02;
  BudgetKind kind = BudgetKind::Sparsity;
  double fraction = 0.5;  // bytes / parameters
  double target() const { return kind == BudgetKind::Sparsity ? sparsity : fraction; }
};

// The measure of `plan` under `kind` (see BudgetKind).
double budget_measure(const CompressionPlan& plan, const ModelConfig& config, BudgetKind kind);
// "linear sparsity 0.500 ± 0.020", "stored bytes 0.300 ± 0.010 of dense fp16", "parameters 0.800 ± 0.010 of
// the model": for messages and summaries.
std::string budget_description(const Budget& budget);

bool within_budget(const CompressionPlan& plan, const ModelConfig& config, const Budget& budget);

// Throws InputError naming the offending setting when the space cannot express any plan (no levels, a
// removable layer out of range, a budget no combination of levels reaches).
void validate_space(const SearchSpace& space, const ModelConfig& config, const Budget& budget);

class PlanSampler {
 public:
  PlanSampler(SearchSpace space, ModelConfig config, Budget budget);

  // A random plan of the space inside the budget.
  CompressionPlan sample(std::mt19937_64& rng) const;
  // The same sparsity in every searched component, meeting the budget (kind sparsity: exactly; bytes /
  // parameters: the smallest sparsity, to 4 decimals, whose measure reaches the target, found by bisection; no
  // quantization and no removed layer): the reference every search is compared with. Uses the first method of
  // the space.
  CompressionPlan uniform() const;
  // A copy with a few components (and possibly one layer) redrawn, inside the budget.
  CompressionPlan mutate(const CompressionPlan& parent, std::mt19937_64& rng) const;
  // Each layer taken from one parent at random, inside the budget (redrawn by mutation when it is not).
  CompressionPlan crossover(const CompressionPlan& a, const CompressionPlan& b, std::mt19937_64& rng) const;

  const SearchSpace& space() const { return space_; }
  const ModelConfig& config() const { return config_; }
  const Budget& budget() const { return budget_; }
  bool fits(const CompressionPlan& plan) const { return within_budget(plan, config_, budget_); }

 private:
  // Draws component c of layer l around `center` (a sparsity level index, fractional).
  void draw_component(CompressionPlan& plan, int64_t layer, Component c, double center, std::mt19937_64& rng) const;
  // Tries `attempts` times to turn `candidate` into a plan inside the budget by mutating it.
  CompressionPlan repair(CompressionPlan candidate, std::mt19937_64& rng) const;
  // The sparsity level index (fractional) that plans are drawn around: for kind sparsity the first level at or
  // above the target; for bytes / parameters where the measure of "every searched component at one level"
  // (int8 on half of them when the space allows int8) crosses the target, interpolated between levels.
  double level_center() const;

  SearchSpace space_;
  ModelConfig config_;
  Budget budget_;
  double center_ = 0.0;  // level_center(), computed once
};

}  // namespace divprune

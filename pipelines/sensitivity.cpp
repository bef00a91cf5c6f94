// The `sensitivity` stage: the Divergent Token Metrics sweep. One component at a time is compressed (every
// layer × component of `sensitivity.components` pruned at each of `sensitivity.steps`, each of them alone in
// int8, each whole layer removed), everything else left as in the checkpoint; every such plan is evaluated like
// the evaluate stage (work queue over replicas, resumable by plan hash). The coordinator then builds the
// layers × components × steps tables of FDT, SDT, KL and perplexity in /sensitivity and ranks the components by
// how early they diverge: the first step at which the mean FDT falls below `fdt_threshold` · N (N: the greedy
// continuation length), ties broken by the mean FDT over all steps (lower = more sensitive).
//
// Archive layout (src/archive/SCHEMA.md, "/sensitivity"; written by src/archive/sensitivity_archive.hpp):
//   steps [S], layers [L], components [C]           the sweep's axes
//   plan_ids [L·C·S], fdt/sdt/kl/perplexity [L,C,S]  the pruning sweep
//   int8/plan_ids [L·C], int8/fdt ... [L,C]          each component alone in int8 (when sensitivity.int8)
//   removed/plan_ids [L], removed/fdt ... [L]        each layer removed (when sensitivity.remove_layers)
//   ranking/{layer, component, first_divergent_step, fdt_mean}  [L·C], most sensitive first
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "archive/sensitivity_archive.hpp"
#include "core/errors.hpp"
#include "pipelines/sensitivity.hpp"
#include "pipelines/search_common.hpp"

namespace divprune {

SensitivitySettings read_sensitivity_settings(const RunConfig& c, const ModelConfig& model) {
  SensitivitySettings s;
  const ConfigNode node = c.root["sensitivity"].check_keys(
      {"steps", "method", "components", "layers", "int8", "remove_layers", "fdt_threshold"});
  const ConfigNode steps = node["steps"];
  s.steps = node.get("steps", s.steps);
  if (s.steps.empty()) steps.fail("is empty");
  for (size_t i = 0; i < s.steps.size(); ++i)
    if (!(s.steps[i] > 0.0 && s.steps[i] < 1.0)) steps[i].fail(fmt::format("{} is outside (0, 1)", s.steps[i]));
  if (!std::is_sorted(s.steps.begin(), s.steps.end()) || std::adjacent_find(s.steps.begin(), s.steps.end()) != s.steps.end())
    steps.fail("must be strictly increasing");
  s.method = node.get_enum("method", kPruneMethodNames, s.method);
  if (s.method != PruneMethod::Magnitude && s.method != PruneMethod::MagnitudeRow && s.method != PruneMethod::Wanda &&
      s.method != PruneMethod::SparseGpt)
    node["method"].fail(fmt::format("\"{}\" is not magnitude, magnitude_row, wanda or sparsegpt (the methods every "
                                    "component accepts at any step)", prune_method_name(s.method)));
  if (const ConfigNode components = node["components"]; components.present()) {
    s.components.clear();
    for (const ConfigNode& name : components.elements()) s.components.push_back(name.as_enum(kComponentNames));
    if (s.components.empty()) components.fail("is empty");
  }
  s.layers = node.get("layers", s.layers);
  if (s.layers.empty()) {
    s.layers.resize(static_cast<size_t>(model.num_layers));
    std::iota(s.layers.begin(), s.layers.end(), int64_t{0});
  }
  for (size_t i = 0; i < s.layers.size(); ++i)
    if (s.layers[i] < 0 || s.layers[i] >= model.num_layers)
      node["layers"][i].fail(fmt::format("layer {} is outside [0, {})", s.layers[i], model.num_layers));
  s.int8 = node.get("int8", s.int8);
  s.remove_layers = node.get("remove_layers", s.remove_layers);
  s.fdt_threshold = node.get("fdt_threshold", s.fdt_threshold);
  if (!(s.fdt_threshold > 0.0 && s.fdt_threshold <= 1.0)) node["fdt_threshold"].fail("must lie in (0, 1]");
  if (c.prompt_count == 0 || (c.prompts_file.empty() && c.prompts_text.empty()))
    throw InputError(fmt::format("{}: the sensitivity stage ranks components by FDT: it needs data.prompts", c.file.string()));
  return s;
}

namespace {
std::string step_label(double step) { return fmt::format("{:g}", step * 100.0); }
}  // namespace

std::vector<PlanEntry> sweep_entries(const SensitivitySettings& s, const ModelConfig& model) {
  std::vector<PlanEntry> entries;
  for (int64_t l : s.layers)
    for (Component c : s.components)
      for (double step : s.steps) {
        CompressionPlan plan = CompressionPlan::identity(model.num_layers);
        plan.at(l, c).prune = PruneSpec{s.method, step};
        entries.push_back(plan_entry(fmt::format("sens_L{}_{}_{}", l, component_name(c), step_label(step)),
                                     "sensitivity:prune", plan));
      }
  if (s.int8)
    for (int64_t l : s.layers)
      for (Component c : s.components) {
        CompressionPlan plan = CompressionPlan::identity(model.num_layers);
        plan.at(l, c).quant = QuantMethod::Int8;
        entries.push_back(plan_entry(fmt::format("sens_L{}_{}_int8", l, component_name(c)), "sensitivity:int8", plan));
      }
  if (s.remove_layers)
    for (int64_t l : s.layers) {
      CompressionPlan plan = CompressionPlan::identity(model.num_layers);
      plan.layers[static_cast<size_t>(l)].removed = true;
      entries.push_back(plan_entry(fmt::format("sens_L{}_removed", l), "sensitivity:remove", plan));
    }
  return entries;
}

namespace {

struct RankedComponent {
  int64_t layer = 0;
  Component component = Component::Q;
  int64_t first_divergent_step = 0;  // index into steps; S when the FDT never fell below the threshold
  double fdt_mean = 0.0;             // over the steps
};

// Most sensitive first: diverges at an earlier step, then lower mean FDT over the steps.
std::vector<RankedComponent> rank_components(const SensitivitySettings& s, const std::vector<double>& fdt,
                                             double threshold_tokens) {
  const size_t steps = s.steps.size();
  std::vector<RankedComponent> ranked;
  size_t cell = 0;
  for (int64_t l : s.layers)
    for (Component c : s.components) {
      RankedComponent r{l, c, static_cast<int64_t>(steps), 0.0};
      for (size_t k = 0; k < steps; ++k, ++cell) {
        const double v = fdt[cell];
        r.fdt_mean += v / static_cast<double>(steps);
        if (v < threshold_tokens && r.first_divergent_step == static_cast<int64_t>(steps)) r.first_divergent_step = static_cast<int64_t>(k);
      }
      ranked.push_back(r);
    }
  std::stable_sort(ranked.begin(), ranked.end(), [](const RankedComponent& a, const RankedComponent& b) {
    if (a.first_divergent_step != b.first_divergent_step) return a.first_divergent_step < b.first_divergent_step;
    return a.fdt_mean < b.fdt_mean;
  });
  return ranked;
}

void print_sensitivity_table(const SensitivitySettings& s, const std::vector<RankedComponent>& ranked,
                             const std::vector<double>& fdt, const std::vector<double>& removed_fdt, int64_t n,
                             double threshold_tokens) {
  const size_t steps = s.steps.size(), comps = s.components.size();
  fmt::print("\nsensitivity: components by how early they diverge ({} pruning, first step with mean FDT < {:.1f} of {})\n",
             prune_method_name(s.method), threshold_tokens, n);
  fmt::print("{:>4} {:>5} {:<5} {:>10}", "rank", "layer", "comp", "diverges");
  for (double step : s.steps) fmt::print(" {:>8}", fmt::format("FDT@{:g}", step));
  fmt::print("\n");
  for (size_t i = 0; i < ranked.size(); ++i) {
    const RankedComponent& r = ranked[i];
    const size_t li = static_cast<size_t>(std::find(s.layers.begin(), s.layers.end(), r.layer) - s.layers.begin());
    const size_t ci = static_cast<size_t>(std::find(s.components.begin(), s.components.end(), r.component) - s.components.begin());
    const std::string at = r.first_divergent_step < static_cast<int64_t>(steps)
                               ? fmt::format("{:g}", s.steps[static_cast<size_t>(r.first_divergent_step)])
                               : std::string("never");
    fmt::print("{:>4} {:>5} {:<5} {:>10}", i + 1, r.layer, component_name(r.component), at);
    for (size_t k = 0; k < steps; ++k) fmt::print(" {:>8.2f}", fdt[(li * comps + ci) * steps + k]);
    fmt::print("\n");
  }
  if (!removed_fdt.empty()) {
    fmt::print("layer removed, mean FDT:");
    for (size_t i = 0; i < s.layers.size(); ++i) fmt::print(" L{} {:.2f}", s.layers[i], removed_fdt[i]);
    fmt::print("\n");
  }
  std::fflush(stdout);
}

}  // namespace

void run_sensitivity_stage(StageContext& ctx) {
  const ModelConfig& model = ctx.replica.config();
  SensitivitySettings s;
  world_step([&] { s = read_sensitivity_settings(ctx.config, model); });
  // Every rank builds the same entries from the same settings: nothing to broadcast.
  const std::vector<PlanEntry> entries = sweep_entries(s, model);
  const std::vector<std::string> ids = evaluate_plan_entries(ctx, entries, "sensitivity", false);

  world_step([&] {
    if (!ctx.topology.is_coordinator()) return;
    const int64_t L = static_cast<int64_t>(s.layers.size()), C = static_cast<int64_t>(s.components.size()),
                  S = static_cast<int64_t>(s.steps.size());
    const int64_t n = ctx.archive.read_eval_set().continuation;
    std::vector<Summary> summaries;  // of `ids`, in order
    for (const std::string& id : ids) summaries.push_back(ctx.archive.read_plan_summary(id));
    const double threshold_tokens = s.fdt_threshold * static_cast<double>(n);

    SensitivityRecord record;
    record.method = prune_method_name(s.method);
    record.fdt_threshold = s.fdt_threshold;
    record.continuation = n;
    record.steps = s.steps;
    record.layers = s.layers;
    for (Component c : s.components) record.components.emplace_back(component_name(c));
    // The tables take consecutive runs of `ids`: the sweep, then int8, then removed (sweep_entries' order).
    size_t at = 0;
    auto table = [&](const Shape& dims) {
      const size_t cells = static_cast<size_t>(shape_numel(dims));
      SensitivityTable t = sensitivity_table(dims, {ids.begin() + at, ids.begin() + at + cells},
                                             {summaries.begin() + at, summaries.begin() + at + cells});
      at += cells;
      return t;
    };
    record.sweep = table({L, C, S});
    if (s.int8) record.int8 = table({L, C});
    if (s.remove_layers) record.removed = table({L});
    const std::vector<double>& fdt = record.sweep.fdt;
    const std::vector<double> removed_fdt = record.removed ? record.removed->fdt : std::vector<double>{};

    const std::vector<RankedComponent> ranked = rank_components(s, fdt, threshold_tokens);
    for (const RankedComponent& r : ranked) {
      record.ranking.layer.push_back(r.layer);
      record.ranking.component.emplace_back(component_name(r.component));
      record.ranking.first_divergent_step.push_back(r.first_divergent_step);
      record.ranking.fdt_mean.push_back(r.fdt_mean);
    }
    write_sensitivity(ctx.archive, record);

    print_sensitivity_table(s, ranked, fdt, removed_fdt, n, threshold_tokens);
    const RankedComponent& top = ranked.front();
    spdlog::info("sensitivity: {} plans; most sensitive L{}.{}, least sensitive L{}.{}", ids.size(), top.layer,
                 component_name(top.component), ranked.back().layer, component_name(ranked.back().component));
  });
}

}  // namespace divprune

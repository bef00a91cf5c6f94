// The `baselines` stage (issue 17): the compressions a practitioner tries before a search, each evaluated as an
// ordinary plan at the search's budget (like the sample stage's uniform reference) and recorded by name in
// /search/baselines (src/archive/baselines_archive.hpp):
//   sensitivity    per-component sparsities from the sensitivity sweep's table at the step nearest the budget,
//                  more sensitive components pruned less (search/allocation.hpp; baselines.sensitivity_rule: rank,
//                  a linear spread of width 2λ over the sensitivity ranking shifted to meet the linear-sparsity
//                  budget exactly, or inverse, x_i ∝ 1/s_i water-filled under baselines.max_sparsity), pruned with
//                  the sweep's method; needs a complete `sensitivity` stage. Items: the swept (layer, component)
//                  pairs among space.components.
//   owl            OWL-style layer-wise sparsities (Yin et al.; search/allocation.hpp): layer l's outlier ratio D_l is
//                  the share of entries of its normalised projection inputs (attn_norm: input of q, k, v; ffn_norm:
//                  input of gate, up; the o and down inputs are split over tp ranks and left out) with
//                  |x| > M · mean|x| (M = baselines.owl_threshold, the mean over the layer's entries), measured on
//                  the uncompressed model over the calibration windows when the run has a `calibration:` section
//                  (compress/calibration.hpp calibration_sequences), else over the run's prompts (BOS + prompt,
//                  data.prompts); each searched
//                  component of layer l gets S + 2λ·(mean D − D_l)/(max D − min D) (λ = baselines.owl_lambda, S the
//                  uniform reference's sparsity), pruned with the uniform reference's method.
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
#include "compress/apply.hpp"
#include "core/errors.hpp"
#include "core/sha256.hpp"
#include "model/tokenizer.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/search_common.hpp"
#include "search/allocation.hpp"

namespace divprune {

namespace {

struct BaselineSettings {
  bool sensitivity = true;
  bool owl = true;
  bool random_search = true;
  bool sensitivity_rank = true;    // baselines.sensitivity_rule: rank (true) or inverse
  double sensitivity_lambda = 0.1; // the rank rule's half-spread λ
  double max_sparsity = 0.9;  // the sensitivity and OWL allocations' clip
  double owl_threshold = 5.0; // M: an activation entry is an outlier when |x| > M · mean|x| (OWL's value for Llama)
  double owl_lambda = 0.08;   // λ: layer sparsities span S ± λ·... of total width 2λ (OWL's value for Llama)
};

BaselineSettings read_baseline_settings(const RunConfig& c) {
  BaselineSettings b;
  const ConfigNode node = c.root["baselines"].check_keys(
      {"kinds", "max_sparsity", "owl_threshold", "owl_lambda", "sensitivity_rule", "sensitivity_lambda"});
  if (const ConfigNode kinds = node["kinds"]; kinds.present()) {
    b.sensitivity = b.owl = b.random_search = false;
    for (const ConfigNode& k : kinds.elements()) {
      const std::string name = k.as<std::string>();
      if (name == "sensitivity") b.sensitivity = true;
      else if (name == "owl") b.owl = true;
      else if (name == "random_search") b.random_search = true;
      else k.fail(fmt::format("expected sensitivity, owl or random_search, found \"{}\"", name));
    }
  }
  b.owl_threshold = node.get("owl_threshold", b.owl_threshold);
  if (!(b.owl_threshold > 0.0)) node["owl_threshold"].fail(fmt::format("must be positive, got {}", b.owl_threshold));
  b.owl_lambda = node.get("owl_lambda", b.owl_lambda);
  if (!(b.owl_lambda >= 0.0 && b.owl_lambda < 0.5))
    node["owl_lambda"].fail(fmt::format("must lie in [0, 0.5), got {}", b.owl_lambda));
  if (const ConfigNode rule = node["sensitivity_rule"]; rule.present()) {
    const std::string name = rule.as<std::string>();
    if (name != "rank" && name != "inverse") rule.fail(fmt::format("expected rank or inverse, found \"{}\"", name));
    b.sensitivity_rank = name == "rank";
  }
  b.sensitivity_lambda = node.get("sensitivity_lambda", b.sensitivity_lambda);
  if (!(b.sensitivity_lambda >= 0.0 && b.sensitivity_lambda < 0.5))
    node["sensitivity_lambda"].fail(fmt::format("must lie in [0, 0.5), got {}", b.sensitivity_lambda));
  b.max_sparsity = node.get("max_sparsity", b.max_sparsity);
  if (!(b.max_sparsity > 0.0 && b.max_sparsity < 1.0))
    node["max_sparsity"].fail(fmt::format("must lie in (0, 1), got {}", b.max_sparsity));
  return b;
}

// Rounded to 4 decimals: the plan's YAML and float32 features then hold the same value (compress/FEATURES.md),
// and the budget moves by at most 5e-5.
double round4(double x) { return std::round(x * 1e4) / 1e4; }

// `budget_sparsity`: the linear sparsity to meet (space.budget.sparsity; under a bytes or parameters budget the
// uniform reference's, which meets that budget with the same total of kept entries).
CompressionPlan sensitivity_plan(const SensitivityRecord& sweep, const SearchSettings& s, const ModelConfig& model,
                                 const BaselineSettings& b, double budget_sparsity) {
  const PruneMethod method = kPruneMethodNames.parse(sweep.method, "sensitivity.method");
  const size_t L = sweep.layers.size(), C = sweep.components.size(), S = sweep.steps.size();
  const double n_tokens = static_cast<double>(sweep.continuation);
  // The step nearest the budget (the first on a tie): a component's loss at a sparsity far from the one it will
  // get says little about it (issue 17: the 25% and 75% steps ranked components differently from the 50% one).
  if (S == 0) throw InputError("baselines: the sensitivity sweep has no steps");
  size_t step = 0;
  for (size_t k = 1; k < S; ++k)
    if (std::fabs(sweep.steps[k] - budget_sparsity) < std::fabs(sweep.steps[step] - budget_sparsity)) step = k;
  std::vector<int64_t> layer;
  std::vector<Component> component;
  std::vector<double> sensitivity, sizes;
  for (size_t l = 0; l < L; ++l)
    for (size_t c = 0; c < C; ++c) {
      const Component comp = kComponentNames.parse(sweep.components[c], "sensitivity.components");
      if (std::find(s.space.components.begin(), s.space.components.end(), comp) == s.space.components.end()) continue;
      const double lost = 1.0 - sweep.sweep.fdt[(l * C + c) * S + step] / n_tokens;
      const auto shape = component_shape(comp, model);
      layer.push_back(sweep.layers[l]);
      component.push_back(comp);
      sensitivity.push_back(lost);
      sizes.push_back(static_cast<double>(shape[0] * shape[1]));
    }
  if (layer.empty()) throw InputError("baselines: the sensitivity sweep covers none of space.components");
  const double total = static_cast<double>(plan_size(CompressionPlan::identity(model.num_layers), model).linear_parameters);
  const double target = budget_sparsity * total;
  const std::vector<double> x =
      b.sensitivity_rank ? allocate_sensitivity_rank(sensitivity, sizes, target, b.sensitivity_lambda, b.max_sparsity)
                         : allocate_inverse_sensitivity(sensitivity, sizes, target, b.max_sparsity);
  CompressionPlan plan = CompressionPlan::identity(model.num_layers);
  for (size_t i = 0; i < x.size(); ++i) plan.at(layer[i], component[i]).prune = PruneSpec{method, round4(x[i])};
  return canonical_plan(plan);
}

// Outlier ratio D_l of every layer's normalised projection inputs on the uncompressed model over `sequences` (each
// one forward from position 0), equal to search/allocation.hpp outlier_ratio() of all the layer's entries in
// forward order. Two passes over the sequences (the sum of |x| per layer, then the entries above M · mean|x|), so
// the memory does not grow with the data: the activations of 128 calibration windows of 2048 tokens of a 7B model
// would take gigabytes per layer. Collective over the replica's tp group: every rank runs the same forwards; each
// replica measures the same.
std::vector<double> measure_outlier_ratios(StageContext& ctx, const std::vector<std::vector<int32_t>>& sequences,
                                           double threshold) {
  ModelReplica& replica = ctx.replica;
  const ModelConfig& config = replica.config();
  apply_plan(validate_plan(CompressionPlan::identity(config.num_layers), config, "the identity plan", ctx.topology.tp),
             replica.pristine(), replica.model());
  LlamaModel& model = replica.model();
  const size_t L = static_cast<size_t>(config.num_layers);
  std::vector<double> sum(L, 0.0);
  std::vector<int64_t> count(L, 0), outliers(L, 0);
  bool counting = false;  // pass 2
  std::vector<float> host;
  const ScopedModelHooks hooks(model);  // removed when this function returns or throws
  model.set_observer([&](int64_t layer, LinearInput input, const Tensor& normed) {
    // OWL looks at the normalised inputs of q/k/v and gate/up only: o and down see tp-split columns.
    if (input != LinearInput::Attn && input != LinearInput::Mlp) return;
    host.resize(static_cast<size_t>(normed.numel()));
    model.backend().download(normed, host);
    const size_t l = static_cast<size_t>(layer);
    if (!counting) {
      for (float v : host) sum[l] += std::fabs(static_cast<double>(v));
      count[l] += static_cast<int64_t>(host.size());
    } else {
      const double limit = threshold * (sum[l] / static_cast<double>(count[l]));
      for (float v : host) outliers[l] += std::fabs(static_cast<double>(v)) > limit;
    }
  });
  for (int pass = 0; pass < 2; ++pass) {
    counting = pass == 1;
    for (const std::vector<int32_t>& ids : sequences) {
      KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
      model.forward(ids, 0, cache, /*logit_rows=*/0);  // the observer counts outliers; no logits needed
    }
  }
  std::vector<double> ratios;
  for (size_t l = 0; l < L; ++l)
    ratios.push_back(count[l] > 0 ? static_cast<double>(outliers[l]) / static_cast<double>(count[l]) : 0.0);
  return ratios;
}

CompressionPlan owl_plan(const std::vector<double>& ratios, const PlanSampler& sampler, double lambda, double max_sparsity) {
  // The uniform reference's sparsity and method: OWL redistributes the uniform plan's sparsity over the layers.
  const CompressionPlan uniform = sampler.uniform();
  const SearchSpace& space = sampler.space();
  const PruneSpec spec = *uniform.at(0, space.components.front()).prune;
  const std::vector<double> x = allocate_owl(ratios, spec.sparsity, lambda, max_sparsity);
  CompressionPlan plan = CompressionPlan::identity(static_cast<int64_t>(x.size()));
  for (size_t l = 0; l < x.size(); ++l)
    for (Component c : space.components) plan.at(static_cast<int64_t>(l), c).prune = PruneSpec{spec.method, round4(x[l])};
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
  Bytes owl_payload;  // the OWL sequences, from the coordinator
  world_step([&] {
    s = read_search_settings(ctx.config, model);
    b = read_baseline_settings(ctx.config);
    if (!coordinator || !b.owl) return;
    // OWL's data: the calibration windows when the run has a calibration section (as the OWL paper measures on
    // its calibration samples), else BOS + each prompt of data.prompts.
    std::vector<std::vector<int32_t>> sequences;
    if (calibrated_features(ctx.config)) {
      sequences = calibration_sequences(Tokenizer(ctx.config.tokenizer.string()), run_calibration(ctx).spec());
      spdlog::info("baselines: OWL statistics on {} calibration windows of {} tokens of {}", sequences.size(),
                   run_calibration(ctx).spec().length, ctx.config.calibration_text.string());
    } else {
      const EvalSet set = ctx.archive.read_eval_set();
      if (set.prompts.empty())
        throw InputError("baselines: owl measures activations on data.prompts (or the calibration text), and the run has neither");
      for (const std::vector<int32_t>& prompt : set.prompts) {
        sequences.push_back({model.bos_id});
        sequences.back().insert(sequences.back().end(), prompt.begin(), prompt.end());
      }
    }
    ByteWriter w;
    w.put<int64_t>(static_cast<int64_t>(sequences.size()));
    for (const auto& seq : sequences) w.put_vector(std::span<const int32_t>(seq.data(), seq.size()));
    owl_payload = w.take();
  });
  std::vector<double> outlier_ratios;
  if (b.owl) {
    broadcast_bytes(owl_payload);
    ByteReader r(owl_payload);
    std::vector<std::vector<int32_t>> sequences(static_cast<size_t>(r.get<int64_t>()));
    for (auto& seq : sequences) seq = r.get_vector<int32_t>();
    outlier_ratios = measure_outlier_ratios(ctx, sequences, b.owl_threshold);
  }
  world_step([&] {
    if (!coordinator) return;
    sample = read_search_sample(ctx.archive);
    if (!sample) throw InputError("baselines: the archive holds no complete sample stage (list `sample` before `baselines`)");
    if (b.sensitivity) {
      const std::optional<SensitivityRecord> sweep = read_sensitivity(ctx.archive);
      if (!sweep) throw InputError("baselines: the sensitivity baseline needs a complete sensitivity stage (list `sensitivity` "
                                   "before `baselines`, or set baselines.kinds without it)");
      const double budget_sparsity = s.budget.kind == BudgetKind::Sparsity
                                         ? s.budget.sparsity
                                         : plan_size(PlanSampler(s.space, model, s.budget).uniform(), model).sparsity;
      const CompressionPlan plan = sensitivity_plan(*sweep, s, model, b, budget_sparsity);
      const double sparsity = plan_size(plan, model).sparsity;
      if (s.budget.kind == BudgetKind::Sparsity)
        spdlog::info("baselines: sensitivity-guided plan at linear sparsity {:.4f} (budget {:.3f} ± {:.3f})", sparsity,
                     s.budget.sparsity, s.budget.tolerance);
      else
        spdlog::info("baselines: sensitivity-guided plan at linear sparsity {:.4f} (the uniform reference's), {} {:.4f} "
                     "(budget {})", sparsity, kBudgetKindNames.name(s.budget.kind),
                     budget_measure(plan, model, s.budget.kind), budget_description(s.budget));
      entries.push_back(plan_entry("sensitivity", "baselines:sensitivity", plan));
    }
    if (b.owl) {
      const PlanSampler sampler(s.space, model, s.budget);
      std::string list;
      for (double d : outlier_ratios) list += fmt::format(" {:.4f}", d);
      spdlog::info("baselines: OWL outlier ratio per layer (|x| > {} mean|x|):{}", b.owl_threshold, list);
      const CompressionPlan plan = owl_plan(outlier_ratios, sampler, b.owl_lambda, b.max_sparsity);
      spdlog::info("baselines: OWL plan at linear sparsity {:.4f}", plan_size(plan, model).sparsity);
      entries.push_back(plan_entry("owl", "baselines:owl", plan));
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
    if (b.owl) {
      record.names.push_back("owl");
      record.ids.push_back(ids[next++]);
      record.owl_outlier_ratio = outlier_ratios;
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

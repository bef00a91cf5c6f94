// The `heldout` stage: re-measures the final candidates of a search on a second, disjoint evaluation set (the
// `heldout` section) and says, with paired bootstrap intervals, by how much the best of them beats the
// references. Runs after sample (and train / search) on the same archive.
//
// The held-out data is a sub-archive under /heldout with the layout of /data, /baseline and /plans, written by
// the ordinary baseline stage and evaluate code through a RunArchive rooted at /heldout: resuming, tp and
// replicas behave as they do there (a complete held-out baseline is kept, complete held-out plans are skipped,
// incomplete ones redone). Candidates: the search's top k plans by the selection objective (random samples and
// search rounds' plans, search_pool_ids without uniform), uniform and the best random sample, plus
// reference_plans() below. The best plan is the searched candidate (search_<rank>) with the best held-out
// objective (ties: the better selection rank); /heldout/candidates and /heldout/comparisons are rewritten at the
// end of every run of the stage (cheap: no forward pass).
#include "pipelines/heldout.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "archive/baselines_archive.hpp"
#include "archive/heldout_archive.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "metrics/bootstrap.hpp"
#include "model/tokenizer.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/search_common.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

namespace {

// Keys of a data subsection that name where its data comes from.
bool is_source_key(const std::string& key) { return key == "text" || key == "file" || key == "build"; }

bool has_source(const YAML::Node& section) {
  if (!section || !section.IsMap()) return false;
  for (const auto& kv : section)
    if (is_source_key(kv.first.as<std::string>()) && !kv.second.IsNull()) return true;
  return false;
}

// The held-out prompts as token ids (the same rules as the baseline stage's).
std::vector<std::vector<int32_t>> heldout_prompt_ids(const RunConfig& c) {
  if (c.tokenizer.empty()) return {};
  const Tokenizer tok(c.tokenizer);
  std::vector<std::vector<int32_t>> out;
  if (!c.prompts_file.empty()) {
    for (const std::string& p : read_prompts(c.prompts_file)) out.push_back(tok.encode(p));
  } else if (!c.prompts_text.empty() && c.prompt_count > 0) {
    out = prompts_from_text(tok, c.prompts_text, c.prompt_count, c.prompt_tokens);
  }
  return out;
}

// Further references re-measured on the held-out data and compared with the best plan (role, plan id under
// /plans): the baselines stage's plans recorded in /search/baselines (none when that stage has not run), in its
// order (sensitivity, owl, random_search). The random search's plan is the best of its plans by the current
// objective (the recorded one unless train.objective changed since), as best_random is.
std::vector<std::pair<std::string, std::string>> reference_plans(const RunArchive& archive, const SearchObjective& objective) {
  const std::optional<BaselinesRecord> record = read_search_baselines(archive);
  if (!record) return {};
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < record->names.size(); ++i) {
    std::string id = record->ids[i];
    if (record->names[i] == "random_search" && objective.name != record->objective) {
      const double sign = objective.sign();
      double best = INFINITY;
      for (const Pair& p : read_pairs(archive, objective, record->random_search_ids))
        if (sign * p.value < best) {
          best = sign * p.value;
          id = p.id;
        }
    }
    out.emplace_back(record->names[i], id);
  }
  return out;
}

struct Candidate {
  std::string role, id, name;
  double sparsity = 0.0, selection = NAN, heldout = NAN;
};

}  // namespace

HeldoutSettings read_heldout_settings(const RunConfig& config) {
  HeldoutSettings s;
  const ConfigNode node = config.root["heldout"].check_keys({"candidates", "bootstrap", "data"});
  if (!node.present()) throw InputError(fmt::format("{}: the heldout stage needs a `heldout` section", config.file.string()));
  s.candidates = node.get<int64_t>("candidates", s.candidates);
  if (s.candidates < 1) node["candidates"].fail(fmt::format("must be at least 1, got {}", s.candidates));
  const ConfigNode boot = node["bootstrap"].check_keys({"resamples", "seed"});
  s.resamples = boot.get<int64_t>("resamples", s.resamples);
  if (s.resamples < 1) boot["resamples"].fail(fmt::format("must be at least 1, got {}", s.resamples));
  s.seed = boot.get<uint64_t>("seed", s.seed);
  const ConfigNode hdata = node["data"].check_keys({"perplexity", "prompts", "multiple_choice", "logprobs"});

  // The selection data with the held-out subsections laid over it (see HeldoutSettings::data).
  YAML::Node tree = YAML::Load(config.yaml);
  YAML::Node data = tree["data"] && tree["data"].IsMap() ? YAML::Clone(tree["data"]) : YAML::Node(YAML::NodeType::Map);
  for (const char* sub : {"perplexity", "prompts", "multiple_choice", "logprobs"}) {
    const ConfigNode given = hdata[sub];
    if (given.present()) {
      if (!given.is_map()) given.fail("expected a mapping like the `data` section's");
      YAML::Node merged = data[sub] && data[sub].IsMap() ? YAML::Clone(data[sub]) : YAML::Node(YAML::NodeType::Map);
      if (std::string(sub) != "logprobs") {
        std::vector<std::string> drop;
        for (const auto& kv : merged)
          if (is_source_key(kv.first.as<std::string>())) drop.push_back(kv.first.as<std::string>());
        for (const std::string& k : drop) merged.remove(k);
      }
      for (const auto& kv : given.yaml()) merged[kv.first.as<std::string>()] = YAML::Clone(kv.second);
      data[sub] = merged;
    } else if (std::string(sub) == "multiple_choice") {
      data.remove(sub);
    } else if (std::string(sub) != "logprobs" && has_source(data[sub])) {
      hdata.fail(fmt::format("missing key \"{}\": the held-out set needs its own {} source, disjoint from data.{}",
                             sub, sub == std::string("prompts") ? "prompt" : "perplexity text", sub));
    }
  }
  tree["data"] = data;
  YAML::Emitter out;
  out << tree;
  try {
    s.data = parse_run_config(out.c_str(), config.file, {});
  } catch (const InputError& e) {
    throw InputError(fmt::format("heldout.data (the held-out data laid over `data`): {}", e.what()));
  }
  s.data.store_per_token = true;  // the bootstrap of KL and perplexity resamples tokens
  s.data.plans.clear();
  s.data.stages.clear();  // the held-out data is run by this stage only (and checked once: cmd_run check_config)
  // Disjointness of the sources: the same file (or the same text to draw prompts from) is not held out.
  if (same_file(s.data.ppl_text, config.ppl_text))
    hdata["perplexity"].fail(fmt::format("{} is also data.perplexity.text: the held-out text must be another text",
                                         s.data.ppl_text.string()));
  if (same_file(s.data.prompts_file, config.prompts_file) || same_file(s.data.prompts_text, config.prompts_text))
    hdata["prompts"].fail("reads the prompts of data.prompts: the held-out prompts must come from another file or text");
  return s;
}

void run_heldout_stage(StageContext& ctx) {
  const Topology& topo = ctx.topology;
  const ModelConfig& model = ctx.replica.config();
  HeldoutSettings settings;
  SearchSettings search;
  world_step([&] {
    settings = read_heldout_settings(ctx.config);
    search = read_search_settings(ctx.config, model);
  });
  RunArchive held = heldout_archive(ctx.archive);

  // Candidates and disjointness, on the coordinator, before any forward pass.
  std::vector<Candidate> candidates;
  std::vector<PlanEntry> entries;
  world_step([&] {
    if (!topo.is_coordinator()) return;
    const std::optional<SampleRecord> sample = read_search_sample(ctx.archive);
    if (!sample)
      throw InputError(fmt::format("{}: the heldout stage needs a complete sample stage in {} (stages: [baseline, "
                                   "sample, train, search, heldout])", ctx.config.file.string(), ctx.archive.path().string()));
    const EvalSet selection = ctx.archive.read_eval_set();
    const std::vector<std::vector<int32_t>> prompts = heldout_prompt_ids(settings.data);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (size_t j = 0; j < selection.prompts.size(); ++j)
        if (prompts[i] == selection.prompts[j])
          throw InputError(fmt::format("{}: heldout.data.prompts: held-out prompt {} is also prompt {} of data.prompts "
                                       "(\"{}\"): the held-out set must be disjoint from the selection set",
                                       ctx.config.file.string(), i, j, selection.prompt_text[j]));
    begin_heldout(ctx.archive);

    // The search's top k by the selection objective (loss = sign * value; ties by order in the pool: samples in
    // draw order, then the rounds').
    // The pool without the uniform reference (a reference, not a result of the search; it is a candidate of its own).
    std::vector<std::string> pool_ids;
    for (const std::string& id : search_pool_ids(ctx.archive))
      if (id != sample->uniform_id) pool_ids.push_back(id);
    const std::vector<Pair> pool = read_pairs(ctx.archive, search.objective, pool_ids);
    std::vector<size_t> order(pool.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    const double sign = search.objective.sign();
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return sign * pool[a].value < sign * pool[b].value; });
    auto add = [&](const std::string& role, const std::string& id) {
      if (id.empty()) return;
      Candidate c;
      c.role = role;
      c.id = id;
      const std::vector<Pair> p = read_pairs(ctx.archive, search.objective, {id});
      if (p.empty()) throw InputError(fmt::format("{}: {} plan {} is not complete under /plans", ctx.archive.path().string(), role, id));
      c.name = p[0].name;
      c.sparsity = p[0].sparsity;
      c.selection = p[0].value;
      candidates.push_back(c);
    };
    for (size_t r = 0; r < order.size() && static_cast<int64_t>(r) < settings.candidates; ++r)
      add(fmt::format("search_{}", r + 1), pool[order[r]].id);
    add("uniform", sample->uniform_id);
    // The best random sample by this objective (the sample stage's best_random_id, unless train.objective changed
    // since).
    std::string best_random;
    double best_loss = INFINITY;
    for (const Pair& p : read_pairs(ctx.archive, search.objective, sample->ids))
      if (sign * p.value < best_loss) {
        best_loss = sign * p.value;
        best_random = p.id;
      }
    add("best_random", best_random);
    for (const auto& [role, id] : reference_plans(ctx.archive, search.objective)) add(role, id);
    std::set<std::string> seen;
    for (const Candidate& c : candidates)
      if (seen.insert(c.id).second)
        entries.push_back(PlanEntry{c.name, "archive", ctx.archive.read_plan_yaml(c.id), "/plans/" + c.id});
    spdlog::info("heldout: {} candidates ({} plans) re-measured on the held-out data", candidates.size(), entries.size());
  });
  broadcast_entries(entries);

  // The held-out baseline and plans: the ordinary stages on the sub-archive.
  StageContext sub{settings.data, topo, ctx.replica, held, ctx.run_index};
  run_calibration(ctx);
  sub.calibration = ctx.calibration;  // the run's calibration and cached statistics: held-out ids equal selection ids
  run_baseline_stage(sub);
  const std::vector<std::string> ids = evaluate_plan_entries(sub, entries, "heldout", false);

  if (!topo.is_coordinator()) return;
  std::map<std::string, std::string> held_id;  // selection id -> held-out id (the same canonical plan: equal)
  {
    std::set<std::string> seen;
    size_t e = 0;
    for (const Candidate& c : candidates)
      if (seen.insert(c.id).second) held_id[c.id] = ids[e++];
  }
  for (Candidate& c : candidates) {
    EXPECTS(held_id.at(c.id) == c.id, "a plan's id does not depend on the data it is measured on");
    c.heldout = held.read_plan_summary(c.id)[search.objective.metric];
  }
  const double sign = search.objective.sign();
  const Candidate* best = nullptr;
  for (const Candidate& c : candidates)
    if (c.role.rfind("search_", 0) == 0 && (!best || sign * c.heldout < sign * best->heldout)) best = &c;
  if (best == nullptr)
    throw InputError(fmt::format("{}: the search evaluated no plan besides uniform (sample.count, search.rounds)",
                                 ctx.archive.path().string()));

  // Paired bootstrap of the improvement of the best over each reference, on the held-out units.
  HeldoutComparisons cmp;
  cmp.resamples = settings.resamples;
  cmp.seed = static_cast<int64_t>(settings.seed);
  const std::string objective = search.objective.name;
  const PairedStatistic statistic =
      objective == "perplexity" ? PairedStatistic::PerplexityDifference : PairedStatistic::MeanDifference;
  cmp.statistic = paired_statistic_name(statistic);
  cmp.units = objective == "mean_fdt" ? "prompts" : "tokens";
  auto units_of = [&](const std::string& id) {
    const PlanUnits u = read_plan_units(held, id);
    return objective == "mean_fdt" ? u.fdt : objective == "mean_kl" ? u.kl : u.nll;
  };
  const std::vector<double> best_units = units_of(best->id);
  if (best_units.empty())
    throw InputError(fmt::format("{}: the held-out data has no {} for {} (give heldout.data a perplexity text and "
                                 "data.logprobs.max_tokens of at least one chunk)", ctx.config.file.string(), cmp.units,
                                 objective));
  for (const Candidate& c : candidates) {
    if (c.role.rfind("search_", 0) == 0) continue;
    const std::vector<double> ref = units_of(c.id);
    // Positive: the best is better (higher FDT, lower KL or perplexity).
    const BootstrapInterval r = sign < 0 ? paired_bootstrap(best_units, ref, statistic, settings.resamples, settings.seed)
                                         : paired_bootstrap(ref, best_units, statistic, settings.resamples, settings.seed);
    cmp.roles.push_back(c.role);
    cmp.ids.push_back(c.id);
    cmp.estimate.push_back(r.estimate);
    cmp.lower.push_back(r.lower);
    cmp.upper.push_back(r.upper);
    cmp.n.push_back(r.units);
  }
  HeldoutCandidates record;
  record.objective = objective;
  record.top_k = settings.candidates;
  record.best_id = best->id;
  for (const Candidate& c : candidates) {
    record.roles.push_back(c.role);
    record.ids.push_back(c.id);
    record.names.push_back(c.name);
    record.sparsity.push_back(c.sparsity);
    record.selection.push_back(c.selection);
    record.heldout.push_back(c.heldout);
  }
  write_heldout_outcome(ctx.archive, record, cmp);

  fmt::print("\nheld-out confirmation ({}; selection data -> held-out data, {} {}):\n", objective,
             cmp.n.empty() ? static_cast<int64_t>(best_units.size()) : cmp.n[0], cmp.units);
  fmt::print("{:<12} {:<20} {:>18} {:>9} {:>12} {:>12}\n", "role", "plan", "id", "sparsity", "selection", "held-out");
  for (const Candidate& c : candidates)
    fmt::print("{:<12} {:<20} {:>18} {:>9.4f} {:>12.5g} {:>12.5g}{}\n", c.role, c.name.substr(0, 20), c.id, c.sparsity,
               c.selection, c.heldout, c.id == best->id && c.role.rfind("search_", 0) == 0 ? "  <- best on held-out" : "");
  const char* what = statistic == PairedStatistic::PerplexityDifference ? "perplexity" : objective.c_str();
  // "beats by X": X > 0 is an improvement, whatever the objective's direction; the verdict says whether the
  // interval excludes zero.
  for (size_t i = 0; i < cmp.roles.size(); ++i) {
    const char* verdict = cmp.lower[i] > 0.0   ? "better, the interval excludes 0"
                          : cmp.upper[i] < 0.0 ? "worse, the interval excludes 0"
                                               : "not distinguishable: the interval contains 0";
    fmt::print("searched beats {} by {:.5g} (95% CI [{:.5g}, {:.5g}]) {} on {} held-out {}, {} paired resamples: {}\n",
               cmp.roles[i] == "best_random" ? "best random" : cmp.roles[i], cmp.estimate[i], cmp.lower[i], cmp.upper[i],
               what, cmp.n[i], cmp.units, cmp.resamples, verdict);
  }
  std::fflush(stdout);
}

}  // namespace divprune

// The `evaluate` stage: every plan of the configuration against the archived base outputs (perplexity, KL,
// same-top-1, Δp, FDT/SDT, multiple-choice accuracy and flips; metrics/plan_metrics.hpp).
//
// Plans are spread over replicas by the work queue, one plan per request. A replica applies the plan to a
// working copy of its pristine weights (compress/apply.hpp: apply_plan, collective over its tp group only)
// and runs every perplexity chunk, prompt and multiple-choice item, spreading them over its CPU workers.
// The coordinator compares each result with the base outputs and archives the plan (one transaction, the
// `complete` attribute last) as soon as it arrives. Plans are identified by the hash of their canonical YAML:
// a rerun skips every plan already complete in the archive and redoes incomplete ones.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "archive/plan_failure.hpp"
#include "compress/apply.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "core/progress.hpp"
#include "core/sha256.hpp"
#include "core/stop_signal.hpp"
#include "metrics/divergence.hpp"
#include "metrics/eval_units.hpp"
#include "metrics/teacher_forced.hpp"
#include "pipelines/run_calibration.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

namespace {

struct ParsedPlan {
  PlanEntry entry;
  ValidatedPlan plan;  // for the model and this replica's tensor-parallel size
  std::string yaml;   // canonical
  std::string hash;
  std::string id;
};

// Every rank receives this rank's slice of the base log-probs of the kept chunks. The coordinator reads a
// chunk's rows, computes their log-sum-exps (full storage) and broadcasts both.
BaseLogprobSlices load_base_logprobs(const RunArchive& archive, const EvalSet& set, const Topology& topo,
                                     const ShardLayout& layout, int64_t vocab) {
  LogprobMode mode = LogprobMode::None;
  int32_t k = 0;
  if (topo.is_coordinator()) {
    mode = archive.base_logprob_mode();
    k = static_cast<int32_t>(archive.base_top_k());
  }
  broadcast_value(mode);
  broadcast_value(k);
  BaseLogprobSlices slices(mode, vocab, layout.vocab);
  if (mode == LogprobMode::None) return slices;
  for (int64_t c = 0; c < set.kept_chunks; ++c) {
    const int64_t row0 = set.chunk_offset(c), n = static_cast<int64_t>(set.chunks[static_cast<size_t>(c)].size());
    std::vector<uint16_t> bits;
    std::vector<int32_t> ids;
    std::vector<double> lse;
    if (topo.is_coordinator()) {
      if (mode == LogprobMode::Full) {
        archive.read_base_logprobs(row0, n, bits);
        lse = half_row_lse(bits, n, vocab);
      } else {
        archive.read_base_topk(row0, n, ids, bits);
      }
    }
    broadcast_vector(bits);
    if (mode == LogprobMode::Full) {
      broadcast_vector(lse);
      slices.add_full_chunk(bits, n, lse);
    } else {
      broadcast_vector(ids);
      slices.add_topk_chunk(ids, bits, n, k);
    }
  }
  return slices;
}

// A replica's result for one plan: the outputs, or why they are unusable (non-finite values: the plan's model
// overflows), in which case the plan is archived as failed (archive/plan_failure.hpp) and the run goes on.
struct PlanResult {
  PlanOutputs outputs;
  std::string failure;  // "" when every output is finite
};

Bytes serialize(const PlanResult& r) {
  ByteWriter w;
  w.put_vector(serialize(r.outputs));
  w.put_string(r.failure);
  return w.take();
}

PlanResult deserialize_plan_result(const Bytes& bytes) {
  ByteReader r(bytes);
  PlanResult out;
  out.outputs = deserialize_plan_outputs(r.get_vector<char>());
  out.failure = r.get_string();
  return out;
}

// Where non-finite activations first appear when `ids` run through the model: an observer checks the normalised
// inputs of every layer's attention and MLP (full width, the same on every tp rank, so every rank agrees). The
// first non-finite one names the block before it. Collective over the tp group, like forward.
std::string locate_nonfinite(LlamaModel& model, const std::vector<int32_t>& ids) {
  int64_t bad_layer = -1;
  LinearInput bad_input = LinearInput::Attn;
  std::vector<float> host;
  const ScopedModelHooks hooks(model);  // removed when this function returns or throws
  model.set_observer([&](int64_t layer, LinearInput input, const Tensor& x) {
    if (bad_layer >= 0 || (input != LinearInput::Attn && input != LinearInput::Mlp)) return;
    host.resize(static_cast<size_t>(x.numel()));
    model.backend().download(x, host);
    if (std::any_of(host.begin(), host.end(), [](float v) { return !std::isfinite(v); })) {
      bad_layer = layer;
      bad_input = input;
    }
  });
  {
    KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
    model.forward(ids, 0, cache, /*logit_rows=*/0);  // the observer checks the layers' inputs
  }
  if (bad_layer < 0) return "the layers' inputs are finite: the final norm or the output projection overflows";
  if (bad_input == LinearInput::Mlp)
    return fmt::format("first non-finite activation at the MLP input of layer {}: layer {}'s attention overflows",
                       bad_layer, bad_layer);
  if (bad_layer == 0) return "first non-finite activation at the attention input of layer 0: the embeddings";
  return fmt::format("first non-finite activation at the attention input of layer {}: layer {}'s MLP overflows",
                     bad_layer, bad_layer - 1);
}

// One plan on this replica: apply, then every chunk / prompt / item. Collective over the tp group.
PlanResult evaluate_plan(ModelReplica& replica, RunCalibration& calibration, const ValidatedPlan& plan,
                          const EvalSet& set, const std::vector<int32_t>& continuation, const BaseLogprobSlices& base,
                          const std::function<void()>& between, const std::function<void()>& install) {
  const auto start = std::chrono::steady_clock::now();
  if (install) install();  // other weights than the plan applied (the heal stage's healed models)
  else calibration.apply(plan, replica);  // calibrated operators: with the run's calibration (pipelines/run_calibration.hpp)
  const int32_t bos = replica.config().bos_id;
  const int64_t prompts = static_cast<int64_t>(set.prompts.size()), n = set.continuation;
  PlanResult result;
  PlanOutputs& out = result.outputs;
  // Prompts and items whose scores are non-finite (their argmax and log-probs alone cannot show it).
  std::vector<uint8_t> prompt_bad(static_cast<size_t>(prompts), 0);
  out.nll.assign(static_cast<size_t>(set.tokens()), 0.0);
  out.argmax.assign(out.nll.size(), 0);
  out.kl.assign(static_cast<size_t>(set.kept_tokens()), 0.0);
  out.tf_argmax.assign(static_cast<size_t>(prompts * n), 0);
  out.mc_logprob.assign(static_cast<size_t>(set.mc_choice_count()), 0.0);
  std::vector<int64_t> choice_offset{0};
  for (const auto& c : set.mc_choices) choice_offset.push_back(choice_offset.back() + static_cast<int64_t>(c.size()));

  EvalUnitHandlers work;
  work.chunk = [&](LlamaModel& model, KvCache& cache, int64_t c, size_t) {
    const ScoredTargets scored = score_targets(model, cache, {}, set.chunks[static_cast<size_t>(c)], bos);
    const int64_t offset = set.chunk_offset(c);
    std::copy(scored.stats.nll.begin(), scored.stats.nll.end(), out.nll.begin() + offset);
    std::copy(scored.stats.argmax.begin(), scored.stats.argmax.end(), out.argmax.begin() + offset);
    if (c < set.kept_chunks && c < base.chunks()) {
      std::vector<float> values;
      std::vector<double> base_offset;
      base.dense(c, values, base_offset);
      const std::vector<double> kl = distributed_kl(model.backend(), model.comm(), scored.logits, values, base_offset,
                                                    scored.stats.log_z, base.mode() == LogprobMode::TopK);
      std::copy(kl.begin(), kl.end(), out.kl.begin() + offset);
    }
  };
  work.prompt = [&](LlamaModel& model, KvCache& cache, int64_t p, size_t) {
    const std::span<const int32_t> cont(continuation.data() + p * n, static_cast<size_t>(n));
    const ScoredTargets scored = score_targets(model, cache, set.prompts[static_cast<size_t>(p)], cont, bos);
    std::copy(scored.stats.argmax.begin(), scored.stats.argmax.end(), out.tf_argmax.begin() + p * n);
    prompt_bad[static_cast<size_t>(p)] =
        std::any_of(scored.stats.nll.begin(), scored.stats.nll.end(), [](double v) { return !std::isfinite(v); });
  };
  work.mc = [&](LlamaModel& model, KvCache& cache, int64_t i, size_t) {
    const auto& choices = set.mc_choices[static_cast<size_t>(i)];
    for (size_t c = 0; c < choices.size(); ++c)
      out.mc_logprob[static_cast<size_t>(choice_offset[static_cast<size_t>(i)]) + c] =
          choice_logprob(model, cache, set.mc_context[static_cast<size_t>(i)], choices[c], bos);
  };
  run_eval_units(replica.workers(), set, work, between);
  // Non-finite outputs: the first chunk, prompt or item that shows them (identical on every tp rank: the
  // statistics are reduced over the group), then the layer, by one more forward of its tokens.
  auto finite = [](double v) { return std::isfinite(v); };
  std::vector<int32_t> ids{bos};
  for (int64_t c = 0; c < static_cast<int64_t>(set.chunks.size()) && result.failure.empty(); ++c) {
    const int64_t offset = set.chunk_offset(c), size = static_cast<int64_t>(set.chunks[static_cast<size_t>(c)].size());
    const bool kl_bad = offset < static_cast<int64_t>(out.kl.size()) &&
                        !std::all_of(out.kl.begin() + offset,
                                     out.kl.begin() + std::min<int64_t>(offset + size, static_cast<int64_t>(out.kl.size())), finite);
    const bool nll_bad = !std::all_of(out.nll.begin() + offset, out.nll.begin() + offset + size, finite);
    if (nll_bad || kl_bad) {
      result.failure = fmt::format("non-finite {} in perplexity chunk {}", nll_bad ? "NLL" : "KL", c);
      ids.insert(ids.end(), set.chunks[static_cast<size_t>(c)].begin(), set.chunks[static_cast<size_t>(c)].end());
    }
  }
  for (int64_t p = 0; p < prompts && result.failure.empty(); ++p)
    if (prompt_bad[static_cast<size_t>(p)]) {
      result.failure = fmt::format("non-finite NLL on prompt {}", p);
      ids.insert(ids.end(), set.prompts[static_cast<size_t>(p)].begin(), set.prompts[static_cast<size_t>(p)].end());
    }
  for (size_t i = 0; i < set.mc_choices.size() && result.failure.empty(); ++i)
    for (size_t c = 0; c < set.mc_choices[i].size() && result.failure.empty(); ++c)
      if (!std::isfinite(out.mc_logprob[static_cast<size_t>(choice_offset[i]) + c])) {
        result.failure = fmt::format("non-finite log-probability of multiple-choice item {} choice {}", i, c);
        ids.insert(ids.end(), set.mc_context[i].begin(), set.mc_context[i].end());
        ids.insert(ids.end(), set.mc_choices[i][c].begin(), set.mc_choices[i][c].end());
      }
  if (!result.failure.empty()) {
    if (ids.size() > static_cast<size_t>(replica.config().max_seq_len)) ids.resize(static_cast<size_t>(replica.config().max_seq_len));
    result.failure += " (" + locate_nonfinite(replica.model(), ids) + ")";
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// The results of every plan of the configuration (also those complete from earlier runs), on stdout.
void print_plan_table(const RunArchive& archive, const std::vector<ParsedPlan>& plans) {
  fmt::print("{:<24} {:>10} {:>8} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}\n", "plan", "ppl", "ppl/base", "KL mean",
             "KL se", "same-top1", "FDT", "SDT", "MC acc", "flips");
  std::set<std::string> printed;
  for (const ParsedPlan& p : plans) {
    if (!printed.insert(p.id).second) continue;
    if (const std::optional<std::string> failure = read_plan_failure(archive, p.id)) {
      fmt::print("{:<24} failed: {}\n", p.entry.name.substr(0, 24), *failure);
      continue;
    }
    using M = SummaryMetric;
    const Summary s = archive.read_plan_summary(p.id);
    fmt::print("{:<24} {:>10.4f} {:>8.4f} {:>10.3e} {:>9.2e} {:>9.4f} {:>8.2f} {:>8.4f} {:>8.3f} {:>7.0f}\n",
               p.entry.name.substr(0, 24), s[M::Perplexity], s[M::PerplexityRatio], s[M::KlMean], s[M::KlStderr],
               s[M::SameTop1Rate], s[M::FdtMean], s[M::SdtMean], s[M::McAccuracySum], s[M::McFlipsSumTotal]);
  }
  std::fflush(stdout);
}

}  // namespace

void run_evaluate_stage(StageContext& ctx) {
  world_step([&] {
    if (ctx.config.plans.empty())
      throw InputError(fmt::format("{}: the evaluate stage needs evaluate.plans", ctx.config.file.string()));
  });
  if (ctx.config.plan_parts == 1) {
    evaluate_plan_entries(ctx, ctx.config.plans, "evaluate", true);
    return;
  }
  // One task of a job array: every plan_parts-th entry from plan_part (the `order` attribute then counts in this share).
  std::vector<PlanEntry> share;
  for (size_t i = static_cast<size_t>(ctx.config.plan_part); i < ctx.config.plans.size();
       i += static_cast<size_t>(ctx.config.plan_parts))
    share.push_back(ctx.config.plans[i]);
  if (ctx.topology.is_coordinator())
    spdlog::info("evaluate: part {} of {}: {} of the {} plan entries", ctx.config.plan_part, ctx.config.plan_parts,
                 share.size(), ctx.config.plans.size());
  if (!share.empty()) evaluate_plan_entries(ctx, share, "evaluate", true);
}

std::vector<std::string> evaluate_plan_entries(StageContext& ctx, const std::vector<PlanEntry>& entries,
                                               const std::string& stage, bool print_table,
                                               const PlanWeightsOverride* override_weights) {
  const Topology& topo = ctx.topology;
  const ModelConfig& model_config = ctx.replica.config();
  const ShardLayout& layout = ctx.replica.pristine().layout;

  // Plans: parsed and validated for the model and the replicas' tp on every rank, once.
  std::vector<ParsedPlan> plans;
  world_step([&] {
    for (size_t i = 0; i < entries.size(); ++i) {
      const PlanEntry& e = entries[i];
      const std::string where = e.source == "inline" ? e.where : e.source;
      ValidatedPlan plan = parse_plan(e.yaml, model_config, where, topo.tp);
      if (plan.plan().uses_calibrated_operators() && !calibrated_features(ctx.config))
        throw InputError(fmt::format("{}: the plan uses wanda, sparsegpt, gptq or rtn: give the run configuration {} a "
                                     "`calibration:` section (configs/README.md)", where, ctx.config.file.string()));
      std::string yaml = plan_to_yaml(canonical_plan(plan.plan()));
      // Calibrated plans: the calibration is part of the identity (pipelines/run_calibration.hpp); healed models
      // carry their own hash.
      std::string hash = override_weights ? override_weights->hashes.at(i) : plan_hash(ctx, plan.plan(), yaml, where);
      std::string id = plan_id_from_hash(hash);
      plans.push_back(ParsedPlan{e, std::move(plan), std::move(yaml), std::move(hash), std::move(id)});
    }
  });

  // The coordinator reads the evaluation data and base outputs, and decides which plans are still to do.
  EvalSet set;
  BaseOutputs base;
  Bytes payload;
  std::vector<int64_t> pending;
  world_step([&] {
    if (!topo.is_coordinator()) return;
    set = ctx.archive.read_eval_set();
    base = ctx.archive.read_base_outputs();
    payload = serialize(set);
    const auto status = ctx.archive.plan_status();
    std::set<std::string> seen;
    int64_t complete = 0;
    for (size_t i = 0; i < plans.size(); ++i) {
      const ParsedPlan& p = plans[i];
      if (!seen.insert(p.id).second) {
        spdlog::warn("{}: {} ({}) is the same plan as an earlier entry, evaluated once", stage, p.entry.name, p.entry.where);
        continue;
      }
      const auto it = status.find(p.id);
      if (it != status.end() && it->second) {
        ++complete;
        spdlog::info("{}: plan {} [{}] is complete in the archive, skipped", stage, p.entry.name, p.id);
        continue;
      }
      if (it != status.end()) {
        spdlog::info("{}: plan {} [{}] is incomplete in the archive (interrupted run), redone", stage, p.entry.name, p.id);
        ctx.archive.remove_plan(p.id);
      }
      pending.push_back(static_cast<int64_t>(i));
    }
    ctx.archive.write_feature_names(plan_feature_names(model_config, calibrated_features(ctx.config)));
    spdlog::info("{}: {} plans, {} already complete, {} to evaluate on {} replica(s) x tp {}", stage, seen.size(),
                 complete, pending.size(), topo.replicas, topo.tp);
  });
  broadcast_vector(pending);
  std::vector<std::string> ids;
  for (const ParsedPlan& p : plans) ids.push_back(p.id);
  if (pending.empty()) {
    if (topo.is_coordinator() && print_table) print_plan_table(ctx.archive, plans);
    return ids;
  }
  broadcast_bytes(payload);
  if (!topo.is_coordinator()) set = deserialize_eval_set(payload);
  std::vector<int32_t> continuation = base.continuation;
  broadcast_vector(continuation);
  const BaseLogprobSlices slices = load_base_logprobs(ctx.archive, set, topo, layout, model_config.vocab_size);
  // Calibration statistics (cached mode) once per run, on every rank, before the first calibrated plan.
  RunCalibration& calibration = run_calibration(ctx);
  if (std::any_of(pending.begin(), pending.end(),
                  [&](int64_t i) { return plans[static_cast<size_t>(i)].plan.plan().needs_calibration(); }))
    calibration.prepare(ctx.replica);

  int64_t archived = 0;
  // Done / total, rate and ETA every 30 s (a sweep of hundreds of plans runs for hours on a cluster).
  Progress progress(stage + " plans", static_cast<long>(pending.size()), 30.0);
  auto on_result = [&](int64_t item, int replica, Bytes&& bytes) {
    const ParsedPlan& p = plans[static_cast<size_t>(pending[static_cast<size_t>(item)])];
    const PlanResult result = deserialize_plan_result(bytes);
    const PlanOutputs& outputs = result.outputs;
    PlanRecord record;
    record.id = p.id;
    record.hash = p.hash;
    record.name = p.entry.name;
    record.source = p.entry.source;
    record.yaml = p.yaml;
    record.order = pending[static_cast<size_t>(item)];
    record.run_index = ctx.run_index;
    record.replica = replica;
    record.seconds = outputs.seconds;
    const PlanSize size = plan_size(p.plan.plan(), model_config);
    record.sparsity = size.sparsity;
    record.parameters = size.parameters;
    record.features = plan_features(p.plan.plan(), model_config, calibrated_features(ctx.config));
    record.per_token = ctx.config.store_per_token;
    if (!result.failure.empty()) {
      // Not a number to learn from or rank: archived as failed with its reason, and the run goes on.
      const std::string reason = fmt::format("plan {} [{}]: {}", p.entry.name, p.id, result.failure);
      write_failed_plan(ctx.archive, record, reason);
      note_progress();
      ++archived;
      spdlog::warn("archived plan {} [{}] as failed ({}/{}, replica {}): {}", p.entry.name, p.id, archived,
                   pending.size(), replica, result.failure);
      progress.advance();
      return;
    }
    const PlanComparison cmp = compare_to_base(set, base, outputs);
    ctx.archive.write_plan(record, set, outputs, cmp);
    note_progress();  // an interrupted run that archived a plan made progress (core/stop_signal.hpp)
    ++archived;
    using M = SummaryMetric;
    const Summary& s = cmp.summary;
    spdlog::info("archived plan {} [{}] ({}/{}, replica {}, {:.1f} s): ppl {:.4f}, KL {:.3e} ± {:.1e}, same-top1 {:.4f}, "
                 "FDT {:.2f}, SDT {:.3f}, flips {:.0f}/{:.0f}",
                 p.entry.name, p.id, archived, pending.size(), replica, outputs.seconds, s[M::Perplexity], s[M::KlMean],
                 s[M::KlStderr], s[M::SameTop1Rate], s[M::FdtMean], s[M::SdtMean], s[M::McFlipsSumTotal],
                 s[M::McItems]);
    progress.advance();
  };

  WorkQueue queue(topo, static_cast<int64_t>(pending.size()), on_result);
  while (const auto item = queue.next()) {
    const ParsedPlan& p = plans[static_cast<size_t>(pending[static_cast<size_t>(*item)])];
    const size_t entry = static_cast<size_t>(pending[static_cast<size_t>(*item)]);
    std::function<void()> install;
    if (override_weights) install = [&] { override_weights->install(ctx.replica, entry); };
    const PlanResult result =
        evaluate_plan(ctx.replica, calibration, p.plan, set, continuation, slices, [&] { queue.poll(); }, install);
    queue.submit(*item, topo.is_replica_leader() ? serialize(result) : Bytes{});
  }
  queue.finish();
  // Leave the replica as the next stage expects it: the pristine weights (installed weights may have changed the
  // norms and embeddings too, which apply_plan leaves alone).
  if (override_weights) ctx.replica.model().weights() = upload_weights(ctx.replica.backend(), ctx.replica.pristine());
  apply_plan(validate_plan(CompressionPlan::identity(model_config.num_layers), model_config, "the identity plan", topo.tp),
             ctx.replica.pristine(), ctx.replica.model());
  if (topo.is_coordinator() && print_table) print_plan_table(ctx.archive, plans);
  return ids;
}

}  // namespace divprune

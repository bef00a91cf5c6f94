// The `baseline` stage: tokenises the evaluation data once, runs the uncompressed model on it and archives
// what every later stage compares against (archive groups /data and /baseline; src/archive/SCHEMA.md).
//
// Work items are the evaluation set's units (perplexity chunks, prompts and multiple-choice items;
// metrics/eval_units.hpp), handed out by the work queue; a replica takes as many units as it has workers and
// runs them concurrently. Results stream to the
// coordinator, which writes them into pre-sized datasets, so even full-vocabulary log-probs never pile up in
// memory. A complete baseline for the same data and model is kept (the stage is skipped); an incomplete one
// (killed run) is redone.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "core/errors.hpp"
#include "core/progress.hpp"
#include "metrics/base_logprobs.hpp"
#include "metrics/cloze_task.hpp"
#include "metrics/corpus.hpp"
#include "metrics/eval_units.hpp"
#include "metrics/teacher_forced.hpp"
#include "model/generate.hpp"
#include "parallel/gather_logits.hpp"
#include "pipelines/stage.hpp"

namespace divprune {

namespace {

EvalSet build_eval_set(const RunConfig& c, const ModelConfig& model) {
  EvalSet set;
  set.ctx = c.ctx;
  std::unique_ptr<Tokenizer> tokenizer;
  auto tok = [&]() -> const Tokenizer& {
    if (!tokenizer) {
      if (c.tokenizer.empty())
        throw InputError(fmt::format("{}: `tokenizer` is required to tokenise the evaluation data", c.file.string()));
      tokenizer = std::make_unique<Tokenizer>(c.tokenizer);
    }
    return *tokenizer;
  };
  if (!c.ppl_text.empty()) {
    set.chunks = chunk_stream(tokenize_corpus_prefix(tok(), c.ppl_text, c.max_chunks * c.ctx), c.ctx);
    if (c.max_chunks > 0 && static_cast<int64_t>(set.chunks.size()) > c.max_chunks)
      set.chunks.resize(static_cast<size_t>(c.max_chunks));
  }
  // Whole chunks from the start of the stream while their tokens fit under the cap.
  if (c.logprob_mode != LogprobMode::None) {
    int64_t tokens = 0;
    for (const auto& chunk : set.chunks) {
      if (c.max_logprob_tokens >= 0 && tokens + static_cast<int64_t>(chunk.size()) > c.max_logprob_tokens) break;
      tokens += static_cast<int64_t>(chunk.size());
      ++set.kept_chunks;
    }
    if (set.kept_chunks == 0 && !set.chunks.empty())
      spdlog::warn("data.logprobs.max_tokens = {} is below one chunk ({} tokens): no base log-probs are kept, KL "
                   "cannot be computed", c.max_logprob_tokens, set.chunks.front().size());
  }
  if (!c.prompts_file.empty()) {
    for (const std::string& p : read_prompts(c.prompts_file)) {
      set.prompts.push_back(tok().encode(p));
      set.prompt_text.push_back(p);
      if (set.prompts.back().empty()) throw InputError(fmt::format("{}: a prompt encodes to no tokens", c.prompts_file.string()));
    }
  } else if (!c.prompts_text.empty() && c.prompt_count > 0) {
    set.prompts = prompts_from_text(tok(), c.prompts_text, c.prompt_count, c.prompt_tokens);
    for (const auto& p : set.prompts) set.prompt_text.push_back(tok().decode(p));
  }
  set.continuation = set.prompts.empty() ? 0 : c.continuation;
  std::vector<McItem> items;
  if (!c.mc_file.empty()) items = read_mc_jsonl(c.mc_file);
  if (!c.mc_build_text.empty())
    items = c.mc_build_kind == "cloze" ? build_cloze_task(c.mc_build_text, c.mc_build)
                                      : build_next_sentence_task(c.mc_build_text, c.mc_build);
  if (c.mc_max_items > 0 && static_cast<int64_t>(items.size()) > c.mc_max_items) items.resize(static_cast<size_t>(c.mc_max_items));
  for (const McItem& item : items) {
    set.mc_context.push_back(tok().encode(item.context));
    set.mc_context_text.push_back(item.context);
    std::vector<std::vector<int32_t>> choices;
    for (const std::string& choice : item.choices) {
      choices.push_back(tok().encode(choice));
      if (choices.back().empty()) throw InputError(fmt::format("multiple choice: the choice \"{}\" encodes to no tokens", choice));
    }
    set.mc_choices.push_back(std::move(choices));
    set.mc_choice_text.push_back(item.choices);
    set.mc_answer.push_back(item.answer);
  }
  if (set.longest_sequence() > model.max_seq_len)
    throw InputError(fmt::format("{}: the longest evaluation sequence has {} tokens (BOS included), more than the "
                                 "model's context {} (lower data.perplexity.ctx, data.prompts.tokens/continuation or "
                                 "shorten the multiple-choice texts)",
                                 c.file.string(), set.longest_sequence(), model.max_seq_len));
  for (const auto& chunk : set.chunks)
    for (int32_t id : chunk)
      if (id < 0 || id >= model.vocab_size)
        throw InputError(fmt::format("token id {} outside the model's vocabulary of {}", id, model.vocab_size));
  return set;
}

// The work of every kind of unit on this replica: each handler computes its unit and leaves the payload its
// leader sends in results[slot] (empty on other tp ranks): the unit kind and index, then the outputs.
EvalUnitHandlers baseline_work(const EvalSet& set, const RunConfig& config, const Topology& topology,
                               std::vector<Bytes>& results) {
  auto finish = [&topology, &results](ByteWriter& w, size_t slot) {
    results[slot] = topology.is_replica_leader() ? w.take() : Bytes{};
  };
  EvalUnitHandlers work;
  work.chunk = [&set, &config, &topology, finish](LlamaModel& model, KvCache& cache, int64_t c, size_t slot) {
    const int32_t bos = model.config().bos_id;
    const auto& chunk = set.chunks[static_cast<size_t>(c)];
    const ScoredTargets scored = score_targets(model, cache, {}, chunk, bos);
    ByteWriter w;
    w.put(EvalUnitKind::Chunk);
    w.put(c);
    w.put_vector(scored.stats.nll);
    w.put_vector(scored.stats.argmax);
    std::vector<uint16_t> bits;
    std::vector<int32_t> ids;
    std::vector<double> shift;
    if (c < set.kept_chunks) {
      // Whole rows on the replica leader (tp = 1: a host copy).
      const std::vector<float> full = gather_vocab_slices(model, scored.logits, topology);
      if (topology.is_replica_leader()) {
        const int64_t n = static_cast<int64_t>(chunk.size()), vocab = model.config().vocab_size;
        if (config.logprob_mode == LogprobMode::Full) bits = encode_logprobs(full, n, vocab, scored.stats.log_z, shift);
        else encode_topk(full, n, vocab, scored.stats.log_z, std::min(config.top_k, vocab), ids, bits);
      }
    }
    w.put_vector(bits);
    w.put_vector(ids);
    w.put_vector(shift);
    finish(w, slot);
  };
  work.prompt = [&set, finish](LlamaModel& model, KvCache& cache, int64_t p, size_t slot) {
    const int32_t bos = model.config().bos_id;
    const auto& prompt = set.prompts[static_cast<size_t>(p)];
    std::vector<int32_t> fed{bos};
    fed.insert(fed.end(), prompt.begin(), prompt.end());
    const std::vector<int32_t> continuation = greedy_generate(model, fed, set.continuation);
    const ScoredTargets scored = score_targets(model, cache, prompt, continuation, bos);
    ByteWriter w;
    w.put(EvalUnitKind::Prompt);
    w.put(p);
    w.put_vector(continuation);
    w.put_vector(scored.stats.argmax);
    finish(w, slot);
  };
  work.mc = [&set, finish](LlamaModel& model, KvCache& cache, int64_t i, size_t slot) {
    const int32_t bos = model.config().bos_id;
    std::vector<double> logprob;
    for (const auto& choice : set.mc_choices[static_cast<size_t>(i)])
      logprob.push_back(choice_logprob(model, cache, set.mc_context[static_cast<size_t>(i)], choice, bos));
    ByteWriter w;
    w.put(EvalUnitKind::Mc);
    w.put(i);
    w.put_vector(logprob);
    finish(w, slot);
  };
  return work;
}

}  // namespace

void run_baseline_stage(StageContext& ctx) {
  const auto start = std::chrono::steady_clock::now();
  const Topology& topo = ctx.topology;
  const RunConfig& config = ctx.config;
  const ModelConfig& model_config = ctx.replica.config();
  EvalSet set;
  Bytes payload;
  int32_t skip = 0;
  world_step([&] {
    if (!topo.is_coordinator()) return;
    set = build_eval_set(config, model_config);
    payload = serialize(set);
    const std::string existing = ctx.archive.complete_baseline_hash();
    if (existing == set.hash()) {
      skip = 1;
    } else if (!existing.empty()) {
      throw InputError(fmt::format("{}: holds a complete baseline for other evaluation data (data section or "
                                   "tokenizer changed); use a new archive or delete this one",
                                   ctx.archive.path().string()));
    }
  });
  broadcast_value(skip);
  if (skip) {
    if (topo.is_coordinator()) spdlog::info("baseline: complete in {} for this data, skipped", ctx.archive.path().string());
    return;
  }
  broadcast_bytes(payload);
  if (!topo.is_coordinator()) set = deserialize_eval_set(payload);
  const int64_t chunks = static_cast<int64_t>(set.chunks.size()), prompts = static_cast<int64_t>(set.prompts.size()),
                items = static_cast<int64_t>(set.mc_answer.size()), vocab = model_config.vocab_size;
  const int64_t total = eval_unit_count(set);

  // The coordinator keeps every base output except the log-probs, which go straight to the archive.
  BaseOutputs base;
  if (topo.is_coordinator()) {
    spdlog::info("baseline: {} perplexity chunks ({} tokens, base log-probs ({}) for the first {} chunks = {} tokens), "
                 "{} prompts x {} greedy tokens, {} multiple-choice items ({} choices)",
                 chunks, set.tokens(), logprob_mode_name(config.logprob_mode), set.kept_chunks, set.kept_tokens(),
                 prompts, set.continuation, items, set.mc_choice_count());
    ctx.archive.write_eval_set(set);
    ctx.archive.begin_baseline(set, config.logprob_mode, std::min(config.top_k, vocab), vocab);
    base.nll.assign(static_cast<size_t>(set.tokens()), 0.0);
    base.argmax.assign(static_cast<size_t>(set.tokens()), 0);
    base.continuation.assign(static_cast<size_t>(prompts * set.continuation), 0);
    base.tf_argmax.assign(base.continuation.size(), 0);
    base.mc_logprob.assign(static_cast<size_t>(set.mc_choice_count()), 0.0);
  }
  std::vector<int64_t> choice_offset{0};
  for (const auto& c : set.mc_choices) choice_offset.push_back(choice_offset.back() + static_cast<int64_t>(c.size()));

  Progress progress("baseline items", static_cast<long>(total));
  auto on_result = [&](int64_t, int, Bytes&& bytes) {
    ByteReader r(bytes);
    const auto kind = r.get<EvalUnitKind>();
    const int64_t index = r.get<int64_t>();
    if (kind == EvalUnitKind::Chunk) {
      BaselineChunk out;
      out.nll = r.get_vector<double>();
      out.argmax = r.get_vector<int32_t>();
      const auto bits = r.get_vector<uint16_t>();
      out.topk_ids = r.get_vector<int32_t>();
      out.logprob_shift = r.get_vector<double>();
      if (out.topk_ids.empty()) out.logprobs = bits;
      else out.topk_logprobs = bits;
      // A base model that overflows leaves nothing to compare plans with: bad input, not a result.
      if (!std::all_of(out.nll.begin(), out.nll.end(), [](double v) { return std::isfinite(v); }))
        throw InputError(fmt::format("baseline: the base model {} gives a non-finite NLL in perplexity chunk {} "
                                     "(weights or activations overflow)", ctx.config.model.string(), index));
      const int64_t offset = set.chunk_offset(index);
      std::copy(out.nll.begin(), out.nll.end(), base.nll.begin() + offset);
      std::copy(out.argmax.begin(), out.argmax.end(), base.argmax.begin() + offset);
      ctx.archive.write_baseline_chunk(set, index, out);
    } else if (kind == EvalUnitKind::Prompt) {
      const auto continuation = r.get_vector<int32_t>();
      const auto tf = r.get_vector<int32_t>();
      std::copy(continuation.begin(), continuation.end(), base.continuation.begin() + index * set.continuation);
      std::copy(tf.begin(), tf.end(), base.tf_argmax.begin() + index * set.continuation);
      ctx.archive.write_baseline_prompt(set, index, continuation, tf);
    } else {
      const auto logprob = r.get_vector<double>();
      std::copy(logprob.begin(), logprob.end(), base.mc_logprob.begin() + choice_offset[static_cast<size_t>(index)]);
      ctx.archive.write_baseline_mc(set, index, logprob);
    }
    progress.advance();
  };

  WorkQueue queue(topo, total, on_result);
  const std::vector<LlamaModel*> workers = ctx.replica.workers();
  std::vector<Bytes> results;
  const EvalUnitHandlers work = baseline_work(set, config, topo, results);
  while (true) {
    // As many units as this replica has workers, computed concurrently.
    std::vector<int64_t> batch;
    while (batch.size() < workers.size()) {
      const auto item = queue.next();
      if (!item) break;
      batch.push_back(*item);
    }
    if (batch.empty()) break;
    results.assign(batch.size(), Bytes{});
    run_eval_units(workers, set, batch, work, [&] { queue.poll(); });
    for (size_t t = 0; t < batch.size(); ++t) queue.submit(batch[t], std::move(results[t]));
  }
  queue.finish();

  if (topo.is_coordinator()) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ctx.archive.finish_baseline(set, base, seconds);
    const Summary s = summarize_base(set, base);
    spdlog::info("baseline: done in {:.1f} s; base perplexity {:.4f}, multiple-choice accuracy {:.3f} (sum) / {:.3f} "
                 "(mean), teacher-forced FDT of the base on its own continuation {:.2f} of {}",
                 seconds, s[SummaryMetric::Perplexity], s[SummaryMetric::McAccuracySum], s[SummaryMetric::McAccuracyMean],
                 s[SummaryMetric::TfFdtMean],
                 set.continuation);
  }
}

}  // namespace divprune

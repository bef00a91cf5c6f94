#include "metrics/eval_units.hpp"

#include <numeric>
#include <string>

#include "core/errors.hpp"
#include "parallel/worker_pool.hpp"

namespace divprune {

int64_t eval_unit_count(const EvalSet& set) {
  return static_cast<int64_t>(set.chunks.size() + set.prompts.size() + set.mc_answer.size());
}

EvalUnit eval_unit(const EvalSet& set, int64_t unit) {
  const int64_t chunks = static_cast<int64_t>(set.chunks.size()), prompts = static_cast<int64_t>(set.prompts.size());
  if (unit < 0 || unit >= eval_unit_count(set))
    throw InternalError("eval_unit: unit " + std::to_string(unit) + " outside 0.." +
                        std::to_string(eval_unit_count(set) - 1));
  if (unit < chunks) return {EvalUnitKind::Chunk, unit};
  if (unit < chunks + prompts) return {EvalUnitKind::Prompt, unit - chunks};
  return {EvalUnitKind::Mc, unit - chunks - prompts};
}

void run_eval_units(const std::vector<LlamaModel*>& workers, const EvalSet& set, std::span<const int64_t> units,
                    const EvalUnitHandlers& handlers, const std::function<void()>& between) {
  // Check every handler that will be needed before any work starts.
  for (int64_t u : units) {
    const EvalUnit unit = eval_unit(set, u);
    const EvalUnitHandlers::Handler& handler = unit.kind == EvalUnitKind::Chunk    ? handlers.chunk
                                               : unit.kind == EvalUnitKind::Prompt ? handlers.prompt
                                                                                   : handlers.mc;
    if (!handler) throw InternalError("run_eval_units: no handler for unit kind " + std::to_string(static_cast<int>(unit.kind)));
  }
  run_tasks(
      workers, static_cast<int64_t>(units.size()), set.longest_sequence(),
      [&](LlamaModel& model, KvCache& cache, int64_t task) {
        const auto slot = static_cast<size_t>(task);
        const EvalUnit unit = eval_unit(set, units[slot]);
        switch (unit.kind) {
          case EvalUnitKind::Chunk: handlers.chunk(model, cache, unit.index, slot); break;
          case EvalUnitKind::Prompt: handlers.prompt(model, cache, unit.index, slot); break;
          case EvalUnitKind::Mc: handlers.mc(model, cache, unit.index, slot); break;
        }
      },
      between);
}

void run_eval_units(const std::vector<LlamaModel*>& workers, const EvalSet& set, const EvalUnitHandlers& handlers,
                    const std::function<void()>& between) {
  std::vector<int64_t> all(static_cast<size_t>(eval_unit_count(set)));
  std::iota(all.begin(), all.end(), int64_t{0});
  run_eval_units(workers, set, all, handlers, between);
}

}  // namespace divprune

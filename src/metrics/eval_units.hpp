#pragma once
// The work units of an evaluation set and how they are spread over a rank's workers: the one dispatch the
// baseline and evaluate stages share. Units are numbered in this order: the set's perplexity chunks, its
// prompts, its multiple-choice items; a unit's index is its position within its kind.
//
//   EvalUnitHandlers h;
//   h.chunk = [&](LlamaModel& m, KvCache& c, int64_t chunk, size_t slot) { ... };
//   h.prompt = ...;  h.mc = ...;
//   run_eval_units(replica.workers(), set, h, [&] { queue.poll(); });
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "metrics/eval_data.hpp"
#include "model/llama.hpp"

namespace divprune {

enum class EvalUnitKind : int32_t { Chunk = 0, Prompt = 1, Mc = 2 };

struct EvalUnit {
  EvalUnitKind kind = EvalUnitKind::Chunk;
  int64_t index = 0;   // within its kind: chunk, prompt or multiple-choice item number
};

int64_t eval_unit_count(const EvalSet& set);
// Throws InternalError for a unit outside 0..eval_unit_count(set)-1.
EvalUnit eval_unit(const EvalSet& set, int64_t unit);

// The work of one unit of each kind. `index` is the unit's index within its kind; `slot` its position in the
// list of units given to run_eval_units (equal to the unit number when all units run). Handlers may run
// concurrently on different workers: each must write only results that belong to its unit or slot.
struct EvalUnitHandlers {
  using Handler = std::function<void(LlamaModel& model, KvCache& cache, int64_t index, size_t slot)>;
  Handler chunk;
  Handler prompt;
  Handler mc;
};

// Runs `units` (unit numbers) on `workers` (parallel/worker_pool.hpp: threads at tp = 1 with several CPU
// workers, else in order on the calling thread, which calls `between` after each of its units), each with a
// KV cache for the set's longest sequence, and hands each unit to the handler of its kind. A unit whose
// kind has no handler is an InternalError. Collective over the workers' tp group.
void run_eval_units(const std::vector<LlamaModel*>& workers, const EvalSet& set, std::span<const int64_t> units,
                    const EvalUnitHandlers& handlers, const std::function<void()>& between = {});
// Every unit of the set, in unit order.
void run_eval_units(const std::vector<LlamaModel*>& workers, const EvalSet& set, const EvalUnitHandlers& handlers,
                    const std::function<void()>& between = {});

}  // namespace divprune

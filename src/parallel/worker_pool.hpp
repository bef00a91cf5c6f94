#pragma once
// Running many independent pieces of model work (perplexity chunks, prompts, multiple-choice items) on the
// models a rank may run concurrently (ModelReplica::workers()). The one worker pool of divprune: the stages,
// `divprune perplexity` and the demo all go through run_tasks.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama.hpp"

namespace divprune {

using WorkerTask = std::function<void(LlamaModel& model, KvCache& cache, int64_t task)>;

// Runs tasks 0..count-1, each exactly once, on `workers`, each worker with its own KV cache of
// `cache_capacity` positions. With several workers (CPU at tp = 1), worker w > 0 runs on its own thread and
// every worker takes the next task from a shared counter, so the order of tasks over workers is not fixed:
// tasks must write their results to their own slots. With one worker (tp > 1, or GPU), tasks run in order on
// the calling thread, so every tp rank issues the same collectives in the same order. The calling thread is
// worker 0 and calls `between` (if set) after each of its tasks: the coordinator serves the work queue there.
// After the first exception no worker starts another task; once all have stopped, that exception is
// rethrown on the calling thread.
void run_tasks(const std::vector<LlamaModel*>& workers, int64_t count, int64_t cache_capacity, const WorkerTask& task,
               const std::function<void()>& between = {});

}  // namespace divprune

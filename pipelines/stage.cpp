#include "pipelines/stage.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/errors.hpp"

namespace divprune {

const std::map<std::string, StageFunction>& stage_registry() {
  static const std::map<std::string, StageFunction> registry = {
      {"baseline", run_baseline_stage},
      {"evaluate", run_evaluate_stage},
      {"sample", run_sample_stage},
      {"train", run_train_stage},
      {"search", run_search_stage},
      {"sensitivity", run_sensitivity_stage},
  };
  return registry;
}

void run_tasks(const std::vector<LlamaModel*>& workers, int64_t count, int64_t cache_capacity,
               const std::function<void(LlamaModel&, KvCache&, int64_t)>& task, const std::function<void()>& between) {
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  std::atomic<bool> stop{false};
  auto work = [&](size_t w) {
    try {
      LlamaModel& model = *workers[w];
      KvCache cache = model.make_cache(cache_capacity);
      while (!stop) {
        const int64_t t = next.fetch_add(1);
        if (t >= count) break;
        task(model, cache, t);
        if (w == 0 && between) between();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      stop = true;
    }
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers.size(); ++w) threads.emplace_back(work, w);
  work(0);
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

void broadcast_bytes(Bytes& bytes) {
  int64_t size = static_cast<int64_t>(bytes.size());
  CHECK_MPI(MPI_Bcast(&size, 1, MPI_INT64_T, 0, MPI_COMM_WORLD));
  bytes.resize(static_cast<size_t>(size));
  const int64_t piece = int64_t{1} << 30;
  for (int64_t at = 0; at < size; at += piece) {
    const int count = static_cast<int>(std::min(piece, size - at));
    CHECK_MPI(MPI_Bcast(bytes.data() + at, count, MPI_CHAR, 0, MPI_COMM_WORLD));
  }
}

}  // namespace divprune

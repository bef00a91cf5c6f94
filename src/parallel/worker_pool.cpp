#include "parallel/worker_pool.hpp"

#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/errors.hpp"

namespace divprune {

void run_tasks(const std::vector<LlamaModel*>& workers, int64_t count, int64_t cache_capacity, const WorkerTask& task,
               const std::function<void()>& between) {
  EXPECTS(!workers.empty(), "run_tasks: no workers");
  std::atomic<int64_t> next{0};
  std::atomic<bool> stop{false};
  std::exception_ptr failure;
  std::mutex failure_mutex;
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

}  // namespace divprune

// The worker pool (parallel/worker_pool.hpp) and the evaluation-unit dispatch over it
// (metrics/eval_units.hpp), on the embedded synthetic model: every task runs once, on the right thread, with
// its own worker's model and cache; exceptions come back; perplexity sums do not depend on the worker count.
#include <cblas.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

#include "core/errors.hpp"
#include "metrics/eval_units.hpp"
#include "metrics/perplexity.hpp"
#include "model/checkpoint.hpp"
#include "model/synthetic.hpp"
#include "parallel/worker_pool.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

// Three CPU workers over one set of weights, as ModelReplica::workers() builds them at tp = 1.
class WorkerPool : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("divprune-worker-pool-" + std::to_string(::getpid())));
    write_synthetic_checkpoint(*dir_, SyntheticSpec{});
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override {
    openblas_set_num_threads(1);
    ckpt_ = open_checkpoint(*dir_);
    config_ = ckpt_->config();
    pristine_ = load_host_weights(*ckpt_, make_shard_layout(config_, {0, 1}));
    for (int w = 0; w < 3; ++w) {
      backends_.push_back(make_backend(BackendKind::Cpu));
      if (w == 0)
        models_.push_back(std::make_unique<LlamaModel>(config_, pristine_.layout, *backends_[0], comm_,
                                                       upload_weights(*backends_[0], pristine_)));
      else
        models_.push_back(std::make_unique<LlamaModel>(config_, pristine_.layout, *backends_.back(), comm_,
                                                       models_[0]->shared_weights()));
      workers_.push_back(models_.back().get());
    }
  }

  // Deterministic token sequences of varying length inside the synthetic vocabulary.
  std::vector<std::vector<int32_t>> sequences(size_t count, size_t longest) const {
    std::vector<std::vector<int32_t>> out;
    for (size_t s = 0; s < count; ++s) {
      std::vector<int32_t> seq;
      for (size_t i = 0; i < 4 + (s * 7) % (longest - 3); ++i)
        seq.push_back(static_cast<int32_t>(3 + (s * 131 + i * 17) % static_cast<size_t>(config_.vocab_size - 3)));
      out.push_back(std::move(seq));
    }
    return out;
  }

  static std::filesystem::path* dir_;
  std::unique_ptr<Checkpoint> ckpt_;
  ModelConfig config_;
  HostWeights pristine_;
  SoloCommunicator comm_;
  std::vector<std::unique_ptr<Backend>> backends_;
  std::vector<std::unique_ptr<LlamaModel>> models_;
  std::vector<LlamaModel*> workers_;
};

std::filesystem::path* WorkerPool::dir_ = nullptr;

TEST_F(WorkerPool, EveryTaskOnceWithItsWorkersModelAndCache) {
  const int64_t count = 40;
  std::vector<std::atomic<int>> runs(count);
  std::vector<LlamaModel*> model_of(count, nullptr);
  std::vector<int64_t> capacity_of(count, 0);
  std::atomic<int> worker0_tasks{0};
  std::set<std::thread::id> threads;
  std::mutex threads_mutex;
  const auto caller = std::this_thread::get_id();
  int between_calls = 0;
  run_tasks(
      workers_, count, 17,
      [&](LlamaModel& model, KvCache& cache, int64_t t) {
        ++runs[static_cast<size_t>(t)];
        model_of[static_cast<size_t>(t)] = &model;
        capacity_of[static_cast<size_t>(t)] = cache.capacity;
        if (&model == workers_[0]) {
          EXPECT_EQ(std::this_thread::get_id(), caller) << "worker 0 runs on the calling thread";
          ++worker0_tasks;
        }
        // Hold the task until every worker has taken one (or 10 s passed), so that all three threads show up
        // even on a loaded machine.
        {
          std::lock_guard<std::mutex> lock(threads_mutex);
          threads.insert(std::this_thread::get_id());
        }
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < until) {
          {
            std::lock_guard<std::mutex> lock(threads_mutex);
            if (threads.size() >= 3) break;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      },
      [&] {
        EXPECT_EQ(std::this_thread::get_id(), caller) << "between runs on the calling thread";
        ++between_calls;
      });
  for (int64_t t = 0; t < count; ++t) {
    EXPECT_EQ(runs[static_cast<size_t>(t)].load(), 1) << "task " << t;
    EXPECT_NE(model_of[static_cast<size_t>(t)], nullptr);
    EXPECT_EQ(capacity_of[static_cast<size_t>(t)], 17);
  }
  EXPECT_EQ(between_calls, worker0_tasks.load()) << "between follows each task of worker 0, only those";
  EXPECT_EQ(threads.size(), 3u) << "three workers, three threads";
}

TEST_F(WorkerPool, OneWorkerRunsInOrderOnTheCallingThread) {
  std::vector<int64_t> order;
  int between_calls = 0;
  const auto caller = std::this_thread::get_id();
  run_tasks(
      {workers_[0]}, 6, 8,
      [&](LlamaModel& model, KvCache&, int64_t t) {
        EXPECT_EQ(&model, workers_[0]);
        EXPECT_EQ(std::this_thread::get_id(), caller);
        order.push_back(t);
      },
      [&] { ++between_calls; });
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(between_calls, 6);
  // No tasks: nothing runs, nothing fails.
  run_tasks(workers_, 0, 8, [&](LlamaModel&, KvCache&, int64_t) { FAIL() << "no task to run"; });
}

TEST_F(WorkerPool, AnExceptionOfAnyWorkerIsRethrown) {
  std::atomic<int> started{0};
  try {
    run_tasks(workers_, 1000, 8, [&](LlamaModel&, KvCache&, int64_t t) {
      ++started;
      if (t == 5) throw InputError("task 5 failed");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    FAIL() << "expected the task's exception";
  } catch (const InputError& e) {
    EXPECT_THAT(e.what(), HasSubstr("task 5 failed"));
  }
  EXPECT_LT(started.load(), 1000) << "workers stop taking tasks after a failure";
  EXPECT_THROW(run_tasks({}, 1, 8, [](LlamaModel&, KvCache&, int64_t) {}), std::exception);
}

TEST_F(WorkerPool, PerplexitySumsDoNotDependOnTheWorkerCount) {
  const auto chunks = sequences(11, 24);
  std::vector<size_t> all(chunks.size());
  std::iota(all.begin(), all.end(), 0);
  const NllSum one = score_chunks(*workers_[0], chunks, all, config_.bos_id);
  const NllSum three = score_chunks(workers_, chunks, all, config_.bos_id);
  EXPECT_GT(one.nll, 0.0);
  EXPECT_EQ(one.tokens, three.tokens);
  EXPECT_EQ(one.nll, three.nll) << "bit-identical: per-chunk sums are added in chunk order";
  int64_t tokens = 0;
  for (const auto& c : chunks) tokens += static_cast<int64_t>(c.size());
  EXPECT_EQ(one.tokens, tokens);
}

// ---- evaluation units ----

EvalSet small_set() {
  EvalSet set;
  set.ctx = 8;
  set.chunks = {{5, 6, 7}, {8, 9}, {10, 11, 12, 13}};
  set.prompts = {{20, 21}, {22}};
  set.continuation = 3;
  set.mc_context = {{30}, {31, 32}, {33}, {34}};
  set.mc_choices = {{{40}, {41}}, {{42}, {43}, {44}}, {{45}, {46}}, {{47}, {48}}};
  set.mc_answer = {0, 2, 1, 0};
  return set;
}

TEST(EvalUnits, NumberChunksThenPromptsThenItems) {
  const EvalSet set = small_set();
  ASSERT_EQ(eval_unit_count(set), 9);
  const EvalUnitKind kinds[] = {EvalUnitKind::Chunk, EvalUnitKind::Chunk, EvalUnitKind::Chunk,
                                EvalUnitKind::Prompt, EvalUnitKind::Prompt, EvalUnitKind::Mc,
                                EvalUnitKind::Mc, EvalUnitKind::Mc, EvalUnitKind::Mc};
  const int64_t indices[] = {0, 1, 2, 0, 1, 0, 1, 2, 3};
  for (int64_t u = 0; u < 9; ++u) {
    const EvalUnit unit = eval_unit(set, u);
    EXPECT_EQ(unit.kind, kinds[u]) << "unit " << u;
    EXPECT_EQ(unit.index, indices[u]) << "unit " << u;
  }
  EXPECT_EQ(eval_unit_count(EvalSet{}), 0);
}

TEST(EvalUnits, AUnitOutsideTheSetIsAnInternalError) {
  const EvalSet set = small_set();
  try {
    eval_unit(set, 9);
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unit 9 outside 0..8"));
  }
  EXPECT_THROW(eval_unit(set, -1), InternalError);
}

TEST_F(WorkerPool, EvalUnitsReachTheHandlerOfTheirKindWithIndexAndSlot) {
  const EvalSet set = small_set();
  std::mutex m;
  std::vector<std::tuple<EvalUnitKind, int64_t, size_t>> seen;
  auto record = [&](EvalUnitKind kind) {
    return [&, kind](LlamaModel&, KvCache& cache, int64_t index, size_t slot) {
      EXPECT_EQ(cache.capacity, set.longest_sequence());
      std::lock_guard<std::mutex> lock(m);
      seen.emplace_back(kind, index, slot);
    };
  };
  EvalUnitHandlers h;
  h.chunk = record(EvalUnitKind::Chunk);
  h.prompt = record(EvalUnitKind::Prompt);
  h.mc = record(EvalUnitKind::Mc);

  // A batch of units, as the baseline stage takes them from the work queue.
  const std::vector<int64_t> batch = {8, 2, 3};
  run_eval_units(workers_, set, batch, h);
  std::sort(seen.begin(), seen.end(), [](const auto& a, const auto& b) { return std::get<2>(a) < std::get<2>(b); });
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::make_tuple(EvalUnitKind::Mc, int64_t{3}, size_t{0}));
  EXPECT_EQ(seen[1], std::make_tuple(EvalUnitKind::Chunk, int64_t{2}, size_t{1}));
  EXPECT_EQ(seen[2], std::make_tuple(EvalUnitKind::Prompt, int64_t{0}, size_t{2}));

  // Every unit, as the evaluate stage runs one plan; `between` on the calling thread.
  seen.clear();
  int between_calls = 0;
  run_eval_units({workers_[0]}, set, h, [&] { ++between_calls; });
  ASSERT_EQ(seen.size(), 9u);
  for (size_t u = 0; u < 9; ++u) {
    const EvalUnit unit = eval_unit(set, static_cast<int64_t>(u));
    EXPECT_EQ(seen[u], std::make_tuple(unit.kind, unit.index, u)) << "in order with one worker";
  }
  EXPECT_EQ(between_calls, 9);
}

TEST_F(WorkerPool, AMissingHandlerFailsBeforeAnyWork) {
  const EvalSet set = small_set();
  int ran = 0;
  EvalUnitHandlers h;
  h.chunk = [&](LlamaModel&, KvCache&, int64_t, size_t) { ++ran; };
  h.prompt = [&](LlamaModel&, KvCache&, int64_t, size_t) { ++ran; };
  try {
    run_eval_units(workers_, set, h);
    FAIL() << "expected InternalError";
  } catch (const InternalError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no handler for unit kind 2"));
  }
  EXPECT_EQ(ran, 0);
  // A batch without multiple-choice units needs no mc handler.
  const std::vector<int64_t> batch = {0, 4};
  run_eval_units(workers_, set, batch, h);
  EXPECT_EQ(ran, 2);
}

}  // namespace
}  // namespace divprune

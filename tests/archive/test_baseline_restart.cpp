// Issue 14, items 1 and 9, at the archive level (no model): a write transaction that does not fit on the disk fails
// before it changes the file, naming the path, and an interrupted baseline restarted many times leaves the archive
// the size of an uninterrupted one (before: every restart deleted and recreated /baseline's datasets, and HDF5
// never reclaims the space of deleted data: 8 interruptions made a 11.5 MB archive 47.5 MB).
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "archive/archive.hpp"
#include "archive/h5.hpp"
#include "tests/archive/archive_test_util.hpp"
#include "core/errors.hpp"

namespace divprune {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kVocab = 2000, kChunks = 8, kCtx = 64;

fs::path temp_archive(const std::string& name) { return test::fresh_temp_archive("baseline-restart", name); }

// 8 chunks of 64 tokens (all keep full log-probs), 2 prompts x 4 tokens, 2 items x 2 choices.
EvalSet eval_set() {
  EvalSet s;
  s.ctx = kCtx;
  for (int64_t c = 0; c < kChunks; ++c) {
    std::vector<int32_t> chunk;
    for (int64_t t = 0; t < kCtx; ++t) chunk.push_back(static_cast<int32_t>((c * 131 + t * 17) % kVocab));
    s.chunks.push_back(chunk);
  }
  s.kept_chunks = kChunks;
  s.prompts = {{5, 6, 7}, {8, 9}};
  s.prompt_text = {"a", "b"};
  s.continuation = 4;
  s.mc_context = {{10, 11}, {12}};
  s.mc_choices = {{{13}, {14, 15}}, {{16}, {17}}};
  s.mc_answer = {0, 1};
  s.mc_context_text = {"c", "d"};
  s.mc_choice_text = {{"e", "f"}, {"g", "h"}};
  return s;
}

// Deterministic outputs of chunk `c` whose log-probs do not compress away (an LCG over the fp16 range of
// ordinary log-probs), as the baseline stage would compute them every time.
BaselineChunk chunk_outputs(int64_t c) {
  BaselineChunk out;
  uint32_t state = 12345u + static_cast<uint32_t>(c);
  for (int64_t t = 0; t < kCtx; ++t) {
    out.nll.push_back(1.0 + 0.01 * static_cast<double>(c * kCtx + t));
    out.argmax.push_back(static_cast<int32_t>((c + t) % kVocab));
    out.logprob_shift.push_back(-0.5 * static_cast<double>(t));
    for (int64_t v = 0; v < kVocab; ++v) {
      state = state * 1664525u + 1013904223u;
      out.logprobs.push_back(static_cast<uint16_t>(0xC000u + (state >> 22)));  // negative values in [-2, -8)
    }
  }
  return out;
}

BaseOutputs write_rest_and_finish(RunArchive& archive, const EvalSet& set) {
  BaseOutputs base;
  for (int64_t c = 0; c < kChunks; ++c) {
    const BaselineChunk out = chunk_outputs(c);
    archive.write_baseline_chunk(set, c, out);
    base.nll.insert(base.nll.end(), out.nll.begin(), out.nll.end());
    base.argmax.insert(base.argmax.end(), out.argmax.begin(), out.argmax.end());
  }
  for (int64_t p = 0; p < 2; ++p) {
    const std::vector<int32_t> cont = {static_cast<int32_t>(p), 1, 2, 3}, tf = {4, 5, 6, static_cast<int32_t>(p)};
    archive.write_baseline_prompt(set, p, cont, tf);
    base.continuation.insert(base.continuation.end(), cont.begin(), cont.end());
    base.tf_argmax.insert(base.tf_argmax.end(), tf.begin(), tf.end());
  }
  archive.write_baseline_mc(set, 0, {-1.0, -2.5});
  archive.write_baseline_mc(set, 1, {-3.0, -0.5});
  base.mc_logprob = {-1.0, -2.5, -3.0, -0.5};
  archive.finish_baseline(set, base, 1.0);
  return base;
}

void expect_same_baseline(const RunArchive& a, const RunArchive& b) {
  const BaseOutputs x = a.read_base_outputs(), y = b.read_base_outputs();
  EXPECT_EQ(x.nll, y.nll);
  EXPECT_EQ(x.argmax, y.argmax);
  EXPECT_EQ(x.continuation, y.continuation);
  EXPECT_EQ(x.tf_argmax, y.tf_argmax);
  EXPECT_EQ(x.mc_logprob, y.mc_logprob);
  std::vector<uint16_t> bits_a, bits_b;
  a.read_base_logprobs(0, kChunks * kCtx, bits_a);
  b.read_base_logprobs(0, kChunks * kCtx, bits_b);
  EXPECT_EQ(bits_a, bits_b);
}

TEST(BaselineRestart, EightInterruptedBaselinesDoNotGrowTheArchive) {
  const EvalSet set = eval_set();
  RunArchive reference(temp_archive("reference.h5"));
  reference.write_eval_set(set);
  reference.begin_baseline(set, LogprobMode::Full, 0, kVocab);
  write_rest_and_finish(reference, set);
  const auto reference_size = static_cast<int64_t>(fs::file_size(reference.path()));

  RunArchive restarted(temp_archive("restarted.h5"));
  for (int64_t kill = 0; kill < 8; ++kill) {
    // Each start writes /data and begins the baseline again, then is "killed" after kill % 8 + 1 chunks.
    restarted.write_eval_set(set);
    restarted.begin_baseline(set, LogprobMode::Full, 0, kVocab);
    for (int64_t c = 0; c <= kill % kChunks; ++c) restarted.write_baseline_chunk(set, c, chunk_outputs(c));
    EXPECT_EQ(restarted.complete_baseline_hash(), "");
  }
  restarted.write_eval_set(set);
  restarted.begin_baseline(set, LogprobMode::Full, 0, kVocab);
  write_rest_and_finish(restarted, set);
  const auto restarted_size = static_cast<int64_t>(fs::file_size(restarted.path()));

  // The log-probs alone are 2 MB (about 1.4 MB compressed); each lost copy would add that much.
  EXPECT_GT(reference_size, 1'000'000);
  EXPECT_LE(restarted_size, reference_size + reference_size / 20) << "reference " << reference_size;
  EXPECT_EQ(restarted.complete_baseline_hash(), set.hash());
  expect_same_baseline(reference, restarted);
  EXPECT_EQ(restarted.read_eval_set().hash(), set.hash());
}

// Different storage (here fewer kept tokens: a changed logprobs.max_tokens) is not reused: the datasets are made anew.
TEST(BaselineRestart, AnIncompleteBaselineForOtherStorageIsReplaced) {
  const EvalSet set = eval_set();
  EvalSet fewer = set;
  fewer.kept_chunks = 2;
  RunArchive archive(temp_archive("changed.h5"));
  archive.write_eval_set(fewer);
  archive.begin_baseline(fewer, LogprobMode::Full, 0, kVocab);
  archive.write_baseline_chunk(fewer, 0, chunk_outputs(0));
  archive.write_eval_set(set);
  archive.begin_baseline(set, LogprobMode::Full, 0, kVocab);
  write_rest_and_finish(archive, set);
  EXPECT_EQ(H5File(archive.path(), H5Mode::Read).dims("baseline/logprobs"), (Shape{kChunks * kCtx, kVocab}));
  EXPECT_EQ(H5File(archive.path(), H5Mode::Read).attr_int("baseline", "kept_tokens"), kChunks * kCtx);
}

// A transaction that does not fit (here under a file-size limit, as `ulimit -f` sets; a full disk gives ENOSPC
// the same way) fails before HDF5 writes anything: IoError naming the path, the archive unchanged and readable,
// and the same transaction succeeds once there is room. Before: HDF5 failed half-way through its metadata flush,
// the file could not be read again ("wrong B-tree signature") and the process segfaulted at exit.
TEST(BaselineRestart, AWriteThatDoesNotFitFailsBeforeChangingTheArchive) {
  const EvalSet set = eval_set();
  RunArchive archive(temp_archive("limited.h5"));
  archive.write_eval_set(set);
  archive.begin_baseline(set, LogprobMode::Full, 0, kVocab);
  archive.write_baseline_chunk(set, 0, chunk_outputs(0));
  const auto size_before = fs::file_size(archive.path());

  // In a child process: the limit and the ignored SIGXFSZ must not reach the test runner.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{static_cast<rlim_t>(size_before + 20'000), static_cast<rlim_t>(size_before + 20'000)};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
    try {
      archive.write_baseline_chunk(set, 1, chunk_outputs(1));
    } catch (const IoError& e) {
      const std::string expected = "file size limit exceeded: " + archive.path().string();
      ::_exit(std::string(e.what()).rfind(expected, 0) == 0 ? 0 : 11);
    } catch (...) {
      ::_exit(12);
    }
    ::_exit(13);  // the write went through: no error to check
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit, 11: other message, 12: other error, 13: no error";

  EXPECT_EQ(fs::file_size(archive.path()), size_before);
  EXPECT_EQ(archive.read_eval_set().hash(), set.hash());
  write_rest_and_finish(archive, set);
  EXPECT_EQ(archive.complete_baseline_hash(), set.hash());
  std::vector<uint16_t> bits;
  archive.read_base_logprobs(kCtx, kCtx, bits);
  EXPECT_EQ(bits, chunk_outputs(1).logprobs);
}

}  // namespace
}  // namespace divprune

// `divprune run` killed with SIGKILL during the sample stage, after its first plan was archived: the rerun
// evaluates only the sampled plans that were not complete (same draws: the sampler is deterministic from the
// seed), and the archive ends with every sampled plan complete and /search/sample written: the same plans,
// metrics and /search/sample as an uninterrupted sample stage on a copy of the same baseline.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipelineResume, KilledSampleResumesWithoutReevaluating) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, search_sections(16), 64, 4));
  ASSERT_EQ(run_config(cfg, "--set stages=[baseline]").exit_code, 0);
  // The uninterrupted run: the same baseline, then the whole sample stage in one go.
  const fs::path reference = dir / "uninterrupted" / "run.h5";
  fs::create_directories(reference.parent_path());
  fs::copy_file(archive, reference);
  const auto uninterrupted = run_config(cfg, "--set stages=[sample] --set archive=\"" + reference.string() + "\"");
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.err;

  const fs::path log = dir / "first.log";
  const std::string cmd = divprune_binary() + " run " + cfg.string() +
                          " --threads 1 --set stages=[sample] 2>" + log.string() + " >/dev/null";
  const KilledRun killed = run_until_log_then_kill(cmd, log, "archived plan");
  ASSERT_TRUE(killed.marker_seen) << "no plan was archived in time";
  ASSERT_TRUE(killed.killed) << "the run finished before it could be killed";

  RunArchive a(archive);
  std::set<std::string> done_before;
  for (const auto& [id, done] : a.plan_status())
    if (done) done_before.insert(id);
  const int complete = static_cast<int>(done_before.size());
  EXPECT_GE(complete, 1);
  {
    H5File f(archive, H5Mode::Read);
    EXPECT_FALSE(f.exists("search/sample"));
  }
  std::printf("killed with %d sampled plans complete\n", complete);

  const auto r = run_config(cfg, "--set stages=[sample]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(std::to_string(complete) + " already complete, "), std::string::npos) << r.err;
  const size_t archived = count_in(r.err, "archived plan");
  const auto after = a.plan_status();
  size_t complete_after = 0;
  for (const auto& [id, done] : after) complete_after += done;
  EXPECT_EQ(complete_after, after.size());
  EXPECT_EQ(archived + static_cast<size_t>(complete), complete_after);
  EXPECT_LT(static_cast<size_t>(complete), complete_after);
  H5File f(archive, H5Mode::Read);
  for (const auto& [id, done] : after)
    EXPECT_EQ(f.attr_int("plans/" + id, "run_index"), done_before.count(id) ? 2 : 3) << id;
  const auto ids = f.read_strings("search/sample/ids");
  EXPECT_EQ(ids.size(), 16u);
  std::set<std::string> sampled(ids.begin(), ids.end());
  sampled.insert(f.attr_string("search/sample", "uniform_id"));
  EXPECT_EQ(sampled.size(), complete_after);

  const SearchOutcome got = read_search_outcome(archive), want = read_search_outcome(reference);
  EXPECT_EQ(got.sample_ids, want.sample_ids);
  EXPECT_EQ(got.uniform_id, want.uniform_id);
  expect_same_plan_summaries(got, want, 0.0, 0.0, "killed+resumed vs uninterrupted");
  {
    H5File g(archive, H5Mode::Read), w(reference, H5Mode::Read);
    EXPECT_EQ(g.attr_string("search/sample", "best_random_id"), w.attr_string("search/sample", "best_random_id"));
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

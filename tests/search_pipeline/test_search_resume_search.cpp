// `divprune run` killed with SIGKILL during the search stage, after its first searched plan was archived: the
// rerun continues the search (the round's predictor and evolution are deterministic from the archive and the
// seeds, so it proposes the same plans and skips the complete ones), evaluates no plan twice, and ends with the
// archive of an uninterrupted run of the same configuration: same plans and metrics, same rounds (ids,
// predicted, measured), same final predictor, Pareto front and best plan.
#include <gtest/gtest.h>

#include <set>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipelineResume, KilledSearchResumesLikeAnUninterruptedRun) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5", reference = dir / "uninterrupted" / "run.h5";
  const int samples = 6, rounds = 2, per_round = 2;
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, search_sections(samples, rounds, per_round)));
  auto r = run_config(cfg, "--set stages=[baseline,sample]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The uninterrupted run: the same archive up to here, then the whole search in one go.
  fs::create_directories(reference.parent_path());
  fs::copy_file(archive, reference);
  r = run_config(cfg, "--set stages=[search] --set archive=\"" + reference.string() + "\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SearchOutcome want = read_search_outcome(reference);
  ASSERT_EQ(want.round_ids.size(), static_cast<size_t>(rounds));

  const fs::path log = dir / "killed.log";
  const std::string cmd = divprune_binary() + " run " + cfg.string() + " --threads 1 --set stages=[search] 2>" +
                          log.string() + " >/dev/null";
  const KilledRun killed = run_until_log_then_kill(cmd, log, "archived plan search_r");
  ASSERT_TRUE(killed.marker_seen) << "no searched plan was archived in time";
  ASSERT_TRUE(killed.killed) << "the run finished before it could be killed";

  const SearchOutcome before = read_search_outcome(archive);
  std::set<std::string> sampled(before.sample_ids.begin(), before.sample_ids.end());
  sampled.insert(before.uniform_id);
  std::map<std::string, int64_t> run_index_before;  // complete plans -> the run that computed them
  size_t searched_before = 0;
  for (const auto& [id, p] : before.plans)
    if (p.complete) {
      run_index_before[id] = p.run_index;
      // run 1: baseline + sample, run 2: the killed search
      EXPECT_EQ(p.run_index, sampled.count(id) ? 1 : 2) << id;
      searched_before += !sampled.count(id);
    }
  EXPECT_GE(searched_before, 1u);
  EXPECT_EQ(run_index_before.size() - searched_before, sampled.size());
  std::printf("killed with %zu searched plans complete (%zu plans in all)\n", searched_before, run_index_before.size());

  r = run_config(cfg, "--set stages=[search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SearchOutcome got = read_search_outcome(archive);
  // No plan evaluated twice: the rerun archives exactly the plans that were not complete.
  const size_t archived = count_in(r.err, "archived plan");
  EXPECT_GE(archived, 1u) << r.err;
  EXPECT_EQ(archived + run_index_before.size(), got.plans.size()) << r.err;
  EXPECT_EQ(got.plans.size(), got.evaluated().size());
  for (const auto& [id, p] : got.plans) {
    EXPECT_TRUE(p.complete) << id;
    const auto it = run_index_before.find(id);
    EXPECT_EQ(p.run_index, it != run_index_before.end() ? it->second : 3) << id;
  }

  // The same archive as the uninterrupted run, to the bit (one process, one thread: deterministic).
  std::set<std::string> got_ids, want_ids;
  for (const auto& [id, p] : got.plans) got_ids.insert(id);
  for (const auto& [id, p] : want.plans) want_ids.insert(id);
  EXPECT_EQ(got_ids, want_ids);
  const SummaryDifference worst = expect_same_plan_summaries(got, want, 0.0, 1e-9, "resumed vs uninterrupted");
  std::printf("largest summary difference: %.2e (%s)\n", worst.absolute, worst.where.empty() ? "none" : worst.where.c_str());
  EXPECT_EQ(got.sample_ids, want.sample_ids);
  EXPECT_EQ(got.round_ids, want.round_ids);
  EXPECT_EQ(got.predicted, want.predicted);
  EXPECT_EQ(got.measured, want.measured);
  EXPECT_EQ(got.best, want.best);
  EXPECT_FALSE(got.best.empty());
  EXPECT_EQ(got.pareto, want.pareto);
  EXPECT_FALSE(got.pareto.empty());
  EXPECT_EQ(got.predictor_json, want.predictor_json);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

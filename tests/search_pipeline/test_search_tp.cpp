// baseline -> sample -> search under mpirun with 4 ranks as 2 replicas x tp 2: the work queue hands every sampled
// and searched plan to exactly one replica (each archived once, both replicas busy), and the archive matches the
// same configuration run on 1 rank at tp 1: the same plans with the same metrics (tensor-parallel sums round
// differently: continuous metrics to 1e-4 relative, discrete ones exactly) and the same search rounds.
//
// The objective is mean FDT, a discrete metric: the predictor sees bit-identical targets in both runs, so the
// rounds are the same by construction. (With mean KL the targets differ in the last digits and a near-tie in
// the predicted ranking could legitimately pick a different plan.) FDT itself is exact across topologies
// unless tp rounding flips a near-tie of a teacher-forced argmax; tests/metrics/test_run_tp.cpp asserts the
// same exactness on this model and these prompts.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipelineTp, TwoReplicasTp2MatchOneRank) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const int samples = 6, rounds = 2, per_round = 3;
  const auto cfg =
      write_config(dir, "run.yaml", search_config(dir / "unused.h5", search_sections(samples, rounds, per_round, "mean_fdt")));
  std::map<std::string, SearchOutcome> outcomes;
  for (const auto& [name, file, ranks, tp] :
       {std::tuple{"tp1", "tp1.h5", 0, 1}, std::tuple{"2 replicas x tp2", "tp2x2.h5", 4, 2}}) {
    const fs::path archive = dir / file;
    const auto r =
        run_config(cfg, "--set stages=[baseline,sample,search] --set archive=\"" + archive.string() + "\"", ranks, tp);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const SearchOutcome o = read_search_outcome(archive);
    {
      H5File f(archive, H5Mode::Read);
      EXPECT_EQ(f.attr_int("/", "tp"), tp) << name;
      EXPECT_EQ(f.attr_int("/", "world_size"), std::max(1, ranks)) << name;
      EXPECT_EQ(f.attr_int("/", "replicas"), std::max(1, ranks) / tp) << name;
    }
    // Every sampled and searched plan is under /plans, complete, and nothing else is.
    ASSERT_EQ(o.round_ids.size(), static_cast<size_t>(rounds)) << name;
    for (const auto& ids : o.round_ids) EXPECT_EQ(ids.size(), static_cast<size_t>(per_round)) << name;
    EXPECT_EQ(o.sample_ids.size(), static_cast<size_t>(samples)) << name;
    const std::set<std::string> evaluated = o.evaluated();
    std::set<std::string> archived_ids;
    std::set<int64_t> replicas;
    for (const auto& [id, p] : o.plans) {
      archived_ids.insert(id);
      EXPECT_TRUE(p.complete) << name << " " << id;
      EXPECT_GE(p.replica, 0) << name << " " << id;
      EXPECT_LT(p.replica, std::max(1, ranks) / tp) << name << " " << id;
      replicas.insert(p.replica);
    }
    EXPECT_EQ(archived_ids, evaluated) << name;
    // Searched plans are new: no round re-evaluates a sampled plan or an earlier round's.
    size_t searched = 0;
    for (const auto& ids : o.round_ids) searched += ids.size();
    EXPECT_EQ(evaluated.size(), std::set<std::string>(o.sample_ids.begin(), o.sample_ids.end()).size() + 1 + searched)
        << name;
    // Each plan evaluated and archived once: one "archived plan" line per plan (the work queue handed no plan
    // to both replicas, and no plan was written twice).
    EXPECT_EQ(count_in(r.err, "archived plan"), o.plans.size()) << name << ": " << r.err;
    if (ranks == 4) {
      EXPECT_EQ(replicas, (std::set<int64_t>{0, 1})) << "one replica got no plan";
    }
    std::printf("%s: %zu plans, evaluated by %zu replica(s)\n", name, o.plans.size(), replicas.size());
    outcomes[name] = o;
  }
  const SearchOutcome& a = outcomes["tp1"];
  const SearchOutcome& b = outcomes["2 replicas x tp2"];
  const SummaryDifference worst = expect_same_plan_summaries(a, b, 1e-4, 2e-6, "tp1 vs 2 replicas x tp2");
  std::printf("closest to the tolerance: %s, %.2e apart (relative %.2e, %.0f%% of the tolerance)\n", worst.where.c_str(),
              worst.absolute, worst.relative, 100 * worst.of_tolerance);
  EXPECT_EQ(a.sample_ids, b.sample_ids);
  EXPECT_EQ(a.uniform_id, b.uniform_id);
  EXPECT_EQ(a.round_ids, b.round_ids);
  EXPECT_EQ(a.predicted, b.predicted);  // the same (exact) targets give the same predictor
  EXPECT_EQ(a.measured, b.measured);
  EXPECT_EQ(a.best, b.best);
  EXPECT_EQ(a.pareto, b.pareto);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// The baselines and heldout stages under mpirun with 4 ranks as 2 replicas x tp 2 against 1 rank at tp 1, the
// pattern of test_search_tp.cpp extended to the issue-17 stages: baseline -> sensitivity (up and down of the first
// and last layer at 50%) -> sample -> baselines (sensitivity, OWL, equal-evaluation random search) -> search (1 round)
// -> heldout, at 10% ± 4% linear sparsity (4 swept components can hold that budget under the 0.9 clip).
// Both archives hold the same plans with the same metrics (continuous to 1e-4 relative, discrete exactly), the
// same baseline plans and OWL outlier ratios (the OWL statistics are taken on the q/k/v and gate/up inputs, which
// every tp rank holds whole), the same held-out candidates, the same held-out metrics and the same bootstrap
// intervals (mean FDT: discrete per-prompt values, so the resampled differences are identical).
#include <gtest/gtest.h>

#include <tuple>

#include "archive/baselines_archive.hpp"
#include "archive/heldout_archive.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

const std::string kStages =
    "sensitivity:\n"
    "  steps: [0.5]\n"
    "  components: [up, down]\n"
    "  layers: [0, 5]\n"
    "  int8: false\n"
    "  remove_layers: false\n"
    "baselines:\n"
    "  kinds: [sensitivity, owl, random_search]\n"
    "heldout:\n"
    "  candidates: 2\n"
    "  bootstrap: {resamples: 200, seed: 3}\n"
    "  data:\n"
    "    perplexity:\n      text: ${assets}/ptb.test.txt\n"
    "    prompts:\n      text: ${assets}/ptb.valid.txt\n      count: 3\n";

// The plans of the held-out sub-archive (/heldout/plans) read like /plans.
std::map<std::string, SearchOutcome::Plan> heldout_plans(const fs::path& archive) {
  std::map<std::string, SearchOutcome::Plan> out;
  H5File f(archive, H5Mode::Read);
  for (const std::string& id : f.children("heldout/plans")) {
    const std::string g = "heldout/plans/" + id;
    if (!f.is_group(g)) continue;
    SearchOutcome::Plan& p = out[id];
    p.complete = f.has_attr(g, "complete") && f.attr_int(g, "complete") == 1;
    for (const std::string& name : f.children(g + "/summary")) p.summary[name] = f.read_double(g + "/summary/" + name)[0];
  }
  return out;
}

TEST(BaselinesHeldoutTp, TwoReplicasTp2MatchOneRank) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  std::string sections = search_sections(4, 1, 2, "mean_fdt");
  const std::string budget = "  budget: {sparsity: 0.4, tolerance: 0.04}\n";
  ASSERT_NE(sections.find(budget), std::string::npos);
  sections.replace(sections.find(budget), budget.size(), "  budget: {sparsity: 0.1, tolerance: 0.04}\n");
  const auto cfg = write_config(dir, "run.yaml", search_config(dir / "unused.h5", kStages + sections));
  struct Run {
    SearchOutcome search, heldout;
    BaselinesRecord baselines;
    HeldoutCandidates candidates;
    HeldoutComparisons comparisons;
  };
  std::map<std::string, Run> runs;
  for (const auto& [name, file, ranks, tp] :
       {std::tuple{"tp1", "tp1.h5", 0, 1}, std::tuple{"2 replicas x tp2", "tp2x2.h5", 4, 2}}) {
    const fs::path archive = dir / file;
    const auto r = run_config(cfg,
                              "--set stages=[baseline,sensitivity,sample,baselines,search,heldout] --set archive=\"" +
                                  archive.string() + "\"",
                              ranks, tp);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    Run& run = runs[name];
    run.search = read_search_outcome(archive);
    run.heldout.plans = heldout_plans(archive);
    const RunArchive a(archive);
    const auto baselines = read_search_baselines(a);
    const auto candidates = read_heldout_candidates(a);
    const auto comparisons = read_heldout_comparisons(a);
    ASSERT_TRUE(baselines && candidates && comparisons) << name;
    run.baselines = *baselines;
    run.candidates = *candidates;
    run.comparisons = *comparisons;
    EXPECT_EQ(run.baselines.names, (std::vector<std::string>{"sensitivity", "owl", "random_search"})) << name;
    // Every plan of both stages is complete; each held-out plan was archived once.
    for (const auto& [id, p] : run.heldout.plans) EXPECT_TRUE(p.complete) << name << " " << id;
    std::printf("%s: %zu plans, %zu held-out plans, %zu comparisons\n", name, run.search.plans.size(),
                run.heldout.plans.size(), run.comparisons.roles.size());
  }
  const Run& a = runs["tp1"];
  const Run& b = runs["2 replicas x tp2"];
  const SummaryDifference worst = expect_same_plan_summaries(a.search, b.search, 1e-4, 2e-6, "/plans tp1 vs tp2");
  const SummaryDifference worst_heldout =
      expect_same_plan_summaries(a.heldout, b.heldout, 1e-4, 2e-6, "/heldout/plans tp1 vs tp2");
  std::printf("closest to the tolerance: %s (%.0f%%), held out %s (%.0f%%)\n", worst.where.c_str(),
              100 * worst.of_tolerance, worst_heldout.where.c_str(), 100 * worst_heldout.of_tolerance);
  // Baselines: the same plans (ids hash the plan), the same random search, the same outlier ratios.
  EXPECT_EQ(a.baselines.names, b.baselines.names);
  EXPECT_EQ(a.baselines.ids, b.baselines.ids);
  EXPECT_EQ(a.baselines.random_search_ids, b.baselines.random_search_ids);
  ASSERT_EQ(a.baselines.owl_outlier_ratio.size(), 6u);
  ASSERT_EQ(b.baselines.owl_outlier_ratio.size(), 6u);
  for (size_t l = 0; l < 6; ++l)
    EXPECT_NEAR(a.baselines.owl_outlier_ratio[l], b.baselines.owl_outlier_ratio[l], 1e-6) << "layer " << l;
  // Held out: the same candidates in the same roles, the same best, the same intervals.
  EXPECT_EQ(a.candidates.roles, b.candidates.roles);
  EXPECT_EQ(a.candidates.ids, b.candidates.ids);
  EXPECT_EQ(a.candidates.best_id, b.candidates.best_id);
  EXPECT_EQ(a.candidates.selection, b.candidates.selection);
  EXPECT_EQ(a.candidates.heldout, b.candidates.heldout);
  EXPECT_EQ(a.comparisons.roles, b.comparisons.roles);
  EXPECT_EQ(a.comparisons.ids, b.comparisons.ids);
  EXPECT_EQ(a.comparisons.estimate, b.comparisons.estimate);
  EXPECT_EQ(a.comparisons.lower, b.comparisons.lower);
  EXPECT_EQ(a.comparisons.upper, b.comparisons.upper);
  EXPECT_GE(a.comparisons.roles.size(), 5u);  // uniform, best random and the three baselines at least

  // read_archive.py --check covers /search/baselines: the tp 2 archive passes, a copy whose random_search names a
  // plan outside its random search fails.
  const std::string check = "/usr/bin/python3 " + kSource + "/analysis/read_archive.py ";
  const auto ok = run_command(check + (dir / "tp2x2.h5").string() + " --check");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  fs::copy_file(dir / "tp2x2.h5", dir / "tampered.h5");
  const auto tamper = run_command(
      "/usr/bin/python3 -c \"import h5py, sys\n"
      "with h5py.File(sys.argv[1], 'r+') as f:\n"
      "    g = f['search/baselines']\n"
      "    s = lambda v: v.decode() if isinstance(v, bytes) else str(v)\n"
      "    names, ids = [s(n) for n in g['names'][...]], [s(i) for i in g['ids'][...]]\n"
      "    ids[names.index('random_search')] = s(f['search/sample'].attrs['uniform_id'])\n"
      "    del g['ids']\n"
      "    g.create_dataset('ids', data=[i.encode() for i in ids])\n\" " +
      (dir / "tampered.h5").string());
  ASSERT_EQ(tamper.exit_code, 0) << tamper.out << tamper.err;
  const auto bad = run_command(check + (dir / "tampered.h5").string() + " --check");
  EXPECT_NE(bad.exit_code, 0) << bad.out;
  EXPECT_NE((bad.out + bad.err).find("/search/baselines: random_search"), std::string::npos) << bad.out << bad.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// The heldout stage (pipelines/heldout.cpp) after a demo-sized search on tiny-llama2-trained: the candidates
// (top 3 by the selection objective, uniform, best random) re-measured on disjoint held-out data (PTB instead of
// WikiText-2), the best chosen on held-out numbers, the paired bootstrap intervals equal to metrics/bootstrap.hpp
// on the archived per-prompt arrays (and to numpy: read_archive.py --check), resume after SIGKILL during the
// held-out evaluations, a rerun that evaluates nothing, and configuration errors (exit 2, one line).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "archive/heldout_archive.hpp"
#include "metrics/bootstrap.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

const std::string kHeldout =
    "heldout:\n"
    "  candidates: 3\n"
    "  bootstrap: {resamples: 500, seed: 7}\n"
    "  data:\n"
    "    perplexity:\n      text: ${assets}/ptb.test.txt\n"
    "    prompts:\n      text: ${assets}/ptb.valid.txt\n      count: 8\n";

double summary(const H5File& f, const std::string& group, const std::string& name) {
  return f.read_double(group + "/summary/" + name)[0];
}

TEST(Heldout, ReMeasuresTheSearchsCandidatesOnDisjointData) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, search_sections(6, 1, 2, "mean_fdt")) + kHeldout);
  const std::string stages = "--set stages=[baseline,sample,train,search,heldout]";
  auto r = run_config(cfg, "--set stages=[baseline,sample,train,search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The heldout stage killed (SIGKILL) after its first archived plan, then resumed: only the unfinished held-out
  // evaluations are redone.
  const fs::path log = dir / "killed.log";
  const KilledRun killed = run_until_log_then_kill(
      divprune_binary() + " run " + cfg.string() + " --threads 1 --set stages=[heldout] 2>" + log.string() + " >/dev/null",
      log, "archived plan");
  ASSERT_TRUE(killed.marker_seen) << "no held-out plan was archived in time";
  ASSERT_TRUE(killed.killed) << "the run finished before it could be killed";
  size_t complete_before = 0;
  {
    H5File f(archive, H5Mode::Read);
    EXPECT_EQ(f.attr_int("heldout/baseline", "complete"), 1);
    EXPECT_FALSE(f.exists("heldout/candidates"));
    for (const std::string& id : f.children("heldout/plans"))
      if (f.is_group("heldout/plans/" + id) && f.attr_int("heldout/plans/" + id, "complete") == 1) ++complete_before;
  }
  EXPECT_GE(complete_before, 1u);
  r = run_config(cfg, stages);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("killed with %zu held-out plans complete\n%s\n", complete_before, r.out.c_str());
  const size_t archived_on_resume = count_in(r.err, "archived plan");
  EXPECT_NE(r.err.find("baseline: complete"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("held-out confirmation"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("searched beats uniform by "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("searched beats best random by "), std::string::npos) << r.out;

  const RunArchive run(archive);
  const auto cand = read_heldout_candidates(run);
  const auto cmp = read_heldout_comparisons(run);
  ASSERT_TRUE(cand && cmp);
  // Each distinct candidate evaluated once over the killed and the resumed run.
  EXPECT_EQ(archived_on_resume + complete_before, std::set<std::string>(cand->ids.begin(), cand->ids.end()).size());
  {
    H5File f(archive, H5Mode::Read);
    // Disjoint data, measured alike: other tokens, the same ctx and continuation length.
    EXPECT_NE(f.attr_string("heldout/data", "eval_hash"), f.attr_string("data", "eval_hash"));
    EXPECT_EQ(f.attr_int("heldout/data", "ctx"), f.attr_int("data", "ctx"));
    EXPECT_EQ(f.attr_int("heldout/data", "continuation_tokens"), f.attr_int("data", "continuation_tokens"));
    EXPECT_EQ(f.read_strings("heldout/data/prompts/text").size(), 8u);
    EXPECT_EQ(f.attr_int("heldout/baseline", "complete"), 1);

    EXPECT_EQ(cand->objective, "mean_fdt");
    EXPECT_EQ(cand->top_k, 3);
    ASSERT_EQ(cand->roles.size(), 5u);
    EXPECT_EQ(cand->roles[0], "search_1");
    EXPECT_EQ(cand->roles[2], "search_3");
    EXPECT_EQ(cand->roles[3], "uniform");
    EXPECT_EQ(cand->roles[4], "best_random");
    EXPECT_EQ(cand->ids[3], f.attr_string("search/sample", "uniform_id"));
    EXPECT_EQ(cand->ids[4], f.attr_string("search/sample", "best_random_id"));
    // Selection scores are the /plans summaries, in decreasing order for the searched ones; held-out scores the
    // /heldout/plans summaries; the best is the searched candidate with the highest held-out FDT.
    double best = -1.0;
    for (size_t i = 0; i < cand->ids.size(); ++i) {
      const std::string id = cand->ids[i];
      EXPECT_EQ(cand->selection[i], summary(f, "plans/" + id, "fdt_mean")) << id;
      EXPECT_EQ(f.attr_int("heldout/plans/" + id, "complete"), 1) << id;
      EXPECT_EQ(cand->heldout[i], summary(f, "heldout/plans/" + id, "fdt_mean")) << id;
      EXPECT_EQ(summary(f, "heldout/plans/" + id, "prompts"), 8.0);
      if (i > 0 && i < 3) EXPECT_LE(cand->selection[i], cand->selection[i - 1]);
      if (i < 3) best = std::max(best, cand->heldout[i]);
    }
    for (size_t i = 0; i < 3; ++i)
      if (cand->ids[i] == cand->best_id) EXPECT_EQ(cand->heldout[i], best);
    // The pool's best by selection is search_1 (the pool: random samples and searched plans, not uniform).
    EXPECT_NE(cand->ids[0], cand->ids[3]);
    for (const std::string& id : f.read_strings("search/sample/ids"))
      EXPECT_LE(summary(f, "plans/" + id, "fdt_mean"), cand->selection[0]) << id;
  }
  // The intervals: metrics/bootstrap.hpp on the held-out per-prompt FDT, best minus reference (maximised).
  EXPECT_EQ(cmp->statistic, "mean_difference");
  EXPECT_EQ(cmp->units, "prompts");
  EXPECT_EQ(cmp->resamples, 500);
  EXPECT_EQ(cmp->seed, 7);
  ASSERT_EQ(cmp->roles.size(), 2u);
  const RunArchive held = heldout_archive(run);
  const PlanUnits b = read_plan_units(held, cand->best_id);
  ASSERT_EQ(b.fdt.size(), 8u);
  for (size_t i = 0; i < cmp->roles.size(); ++i) {
    const BootstrapInterval ci =
        paired_bootstrap(b.fdt, read_plan_units(held, cmp->ids[i]).fdt, PairedStatistic::MeanDifference, 500, 7);
    EXPECT_EQ(cmp->estimate[i], ci.estimate);
    EXPECT_EQ(cmp->lower[i], ci.lower);
    EXPECT_EQ(cmp->upper[i], ci.upper);
    EXPECT_LE(ci.lower, ci.estimate);
    EXPECT_GE(ci.upper, ci.estimate);
    EXPECT_EQ(cmp->n[i], 8);
  }

  // analysis/read_archive.py --check recomputes the held-out summaries and, with numpy, every interval.
  const std::string check = "/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() + " --check";
  const auto py = run_command(check);
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  {
    H5File f(archive, H5Mode::ReadWrite);
    std::vector<double> upper = f.read_double("heldout/comparisons/upper");
    upper[0] += 0.25;
    f.write_double("heldout/comparisons/upper", {static_cast<int64_t>(upper.size())}, upper.data());
    f.close();
  }
  const auto tampered = run_command(check);
  EXPECT_EQ(tampered.exit_code, 1) << tampered.out << tampered.err;
  EXPECT_NE(tampered.out.find("/heldout/comparisons uniform"), std::string::npos) << tampered.out;

  // Rerun: nothing to evaluate (selection or held-out), the same outcome.
  const auto again = run_config(cfg, stages);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count_in(again.err, "archived plan"), 0u) << again.err;
  EXPECT_NE(again.err.find("baseline: complete"), std::string::npos) << again.err;
  EXPECT_EQ(read_heldout_candidates(run)->heldout, cand->heldout);
  EXPECT_EQ(read_heldout_comparisons(run)->upper, cmp->upper);  // rewritten: the tampering is gone

  // analysis/plots.py draws the held-out comparison with its error bars.
  const auto plots = run_command("/usr/bin/python3 " + kSource + "/analysis/plots.py " + archive.string() + " --out " +
                                 (dir / "plots").string());
  EXPECT_EQ(plots.exit_code, 0) << plots.out << plots.err;
  EXPECT_GT(fs::exists(dir / "plots" / "heldout_comparison.png") ? fs::file_size(dir / "plots" / "heldout_comparison.png") : 0u,
            1000u) << plots.out;

  // Objective perplexity: the interval is of the difference of exp(mean NLL) over held-out tokens, and numpy agrees.
  const auto ppl = run_config(cfg, "--set stages=[heldout] --set train.objective=perplexity");
  ASSERT_EQ(ppl.exit_code, 0) << ppl.err;
  std::printf("%s\n", ppl.out.c_str());
  const auto pc = read_heldout_comparisons(run);
  ASSERT_TRUE(pc.has_value());
  EXPECT_EQ(pc->statistic, "perplexity_difference");
  EXPECT_EQ(pc->units, "tokens");
  EXPECT_EQ(pc->n[0], 64);  // 2 chunks of 32 tokens
  {
    const auto pcand = read_heldout_candidates(run);
    const PlanUnits best_nll = read_plan_units(held, pcand->best_id), ref = read_plan_units(held, pc->ids[0]);
    const BootstrapInterval ci = paired_bootstrap(ref.nll, best_nll.nll, PairedStatistic::PerplexityDifference, 500, 7);
    EXPECT_EQ(pc->upper[0], ci.upper);
    H5File f(archive, H5Mode::Read);
    // The estimate is the difference of the two plans' held-out perplexities (reference - best: lower is better).
    EXPECT_NEAR(pc->estimate[0], summary(f, "heldout/plans/" + pc->ids[0], "perplexity") -
                                     summary(f, "heldout/plans/" + pcand->best_id, "perplexity"), 1e-9);
  }
  const auto ppl_check = run_command(check);
  EXPECT_EQ(ppl_check.exit_code, 0) << ppl_check.out << ppl_check.err;

  // Configuration errors: one line, exit 2, before any evaluation.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set heldout.data.prompts.text=" + (assets_dir() / "wikitext2.valid.txt").string(),
       "held-out prompts must come from another file"},
      {"--set heldout.data.perplexity.text=" + (assets_dir() / "wikitext2.test.txt").string(),
       "is also data.perplexity.text"},
      {"--set heldout.data.prompts=~", "missing key \"prompts\""},
      {"--set heldout.candidates=0", "heldout.candidates"},
      {"--set heldout.bootstrap.draws=3", "unknown key \"draws\""},
  };
  for (const auto& [set, message] : cases) {
    const auto e = run_config(cfg, "--set stages=[heldout] " + set);
    EXPECT_EQ(e.exit_code, 2) << set << "\n" << e.err;
    EXPECT_NE(e.err.find(message), std::string::npos) << set << "\n" << e.err;
    EXPECT_EQ(count_in(e.err, "divprune: error:"), 1u) << set << "\n" << e.err;
  }
  // A prompts file repeating a selection prompt is refused after tokenisation.
  {
    H5File f(archive, H5Mode::Read);
    std::ofstream(dir / "overlap.txt") << "An unrelated held-out prompt about the weather .\n"
                                       << f.read_strings("data/prompts/text")[1] << "\n";
  }
  const auto overlap = run_config(cfg, "--set stages=[heldout] --set heldout.data.prompts.text=~ "
                                      "--set heldout.data.prompts.file=" + (dir / "overlap.txt").string());
  EXPECT_EQ(overlap.exit_code, 2) << overlap.err;
  EXPECT_NE(overlap.err.find("is also prompt 1 of data.prompts"), std::string::npos) << overlap.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

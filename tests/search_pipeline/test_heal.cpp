// The heal stage (pipelines/heal.cpp) end to end on tiny-llama2-trained: a pruned + int8 + layer-removed plan is
// trained a few steps on WikiText-2 valid and evaluated against the base outputs as its own plan, linked to its
// parent; a run killed after a checkpoint resumes to the archive of an uninterrupted run (same loss curve, same
// held-out loss of the final weights, same metrics, bit for bit); bad configurations exit 2 with one line.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "archive/heal_archive.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

std::string heal_section(const std::string& text) {
  return chop_heal_section(text) +
         "  max_text_tokens: 3000\n"
         "  heldout_tokens: 256\n"
         "  steps: 6\n"
         "  seq_len: 32\n"
         "  batch: 2\n"
         "  lr: 3e-4\n"
         "  min_lr: 3e-5\n"
         "  warmup: 1\n"
         "  checkpoint_every: 3\n";
}

struct Healed {
  HealRecord record;
  SearchOutcome::Plan plan, parent;
};
std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Healed read_healed(const fs::path& archive) {
  const RunArchive a(archive);
  const std::vector<std::string> ids = heal_record_ids(a);
  EXPECT_EQ(ids.size(), 1u);
  Healed h;
  if (ids.empty()) return h;
  h.record = *read_heal_record(a, ids[0]);
  const SearchOutcome o = read_search_outcome(archive);
  h.plan = o.plans.at(ids[0]);
  h.parent = o.plans.at(h.record.parent_id);
  return h;
}

TEST(HealStage, HealsResumesAndRefusesBadConfigurations) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("wikitext2.valid.txt");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5", reference = dir / "uninterrupted" / "run.h5";
  const auto cfg =
      write_config(dir, "run.yaml", search_config(archive, heal_section("${assets}/wikitext2.valid.txt"), 32, 2));
  auto r = run_config(cfg, "--set stages=[baseline]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::create_directories(reference.parent_path());
  fs::copy_file(archive, reference);

  // The uninterrupted run.
  r = run_config(cfg, "--set stages=[heal] --set archive=\"" + reference.string() + "\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Healed want = read_healed(reference);
  const HealRecord& w = want.record;
  ASSERT_EQ(w.loss.size(), 6u);
  EXPECT_EQ(w.tokens, std::vector<int64_t>(6, 64));
  EXPECT_GE(w.text_tokens, 3000 - 256);  // the prefix ends on a line: at least max_text_tokens, less the tail
  EXPECT_EQ(w.heldout_tokens, 256);
  // The link to the parent, and what healing kept: the parent's structure (sparsity, parameters, plan YAML).
  EXPECT_EQ(w.name, "chop+heal");
  EXPECT_TRUE(want.plan.complete);
  EXPECT_TRUE(want.parent.complete);
  {
    H5File f(reference, H5Mode::Read);
    const std::string g = "plans/" + w.id, p = "plans/" + w.parent_id;
    EXPECT_EQ(f.attr_string(g, "source"), "heal of " + w.parent_id);
    EXPECT_EQ(f.attr_string(g, "plan_yaml"), f.attr_string(p, "plan_yaml"));
    EXPECT_EQ(f.attr_double(g, "sparsity"), f.attr_double(p, "sparsity"));
    EXPECT_EQ(f.attr_int(g, "parameters"), f.attr_int(p, "parameters"));
    EXPECT_NE(w.id, w.parent_id);
  }
  // Healing helped where it was measured without training on it: the text's held-out tail.
  EXPECT_LT(w.heldout_loss_healed, w.heldout_loss_parent);
  std::printf("held-out loss %.4f -> %.4f; WikiText-2 test ppl %.4f -> %.4f, KL %.4f -> %.4f, FDT %.2f -> %.2f; "
              "%.2f s/step, %.0f tokens/s\n",
              w.heldout_loss_parent, w.heldout_loss_healed, want.parent.summary.at("perplexity"),
              want.plan.summary.at("perplexity"), want.parent.summary.at("kl_mean"), want.plan.summary.at("kl_mean"),
              want.parent.summary.at("fdt_mean"), want.plan.summary.at("fdt_mean"), w.seconds / 6.0,
              w.tokens_per_second);
  EXPECT_FALSE(fs::exists(reference.string() + ".heal-" + w.id + ".ckpt"));  // removed once archived

  // Killed after the checkpoint of step 3, then resumed: the uninterrupted run's result, bit for bit.
  const fs::path log = dir / "killed.log";
  const std::string cmd = divprune_binary() + " run " + cfg.string() + " --threads 1 --set stages=[heal] 2>" +
                          log.string() + " >/dev/null";
  const KilledRun killed = run_until_log_then_kill(cmd, log, "checkpoint after step 3 ");
  ASSERT_TRUE(killed.marker_seen) << "no checkpoint in time";
  ASSERT_TRUE(killed.killed) << "the run finished before it could be killed";
  EXPECT_TRUE(heal_record_ids(RunArchive(archive)).empty());
  r = run_config(cfg, "--set stages=[heal]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resumes from"), std::string::npos) << r.err;
  EXPECT_EQ(count_in(r.err, " step 1/6"), 0u) << r.err;  // steps 1 to 3 were not redone
  EXPECT_EQ(count_in(r.err, " step 3/6"), 0u) << r.err;
  const Healed got = read_healed(archive);
  EXPECT_EQ(got.record.id, w.id);
  EXPECT_EQ(got.record.loss, w.loss);
  EXPECT_EQ(got.record.grad_norm, w.grad_norm);
  EXPECT_EQ(got.record.lr, w.lr);
  EXPECT_EQ(got.record.heldout_loss_healed, w.heldout_loss_healed);  // a function of the final weights
  EXPECT_EQ(got.plan.summary, want.plan.summary);
  // A rerun skips the complete healed plan.
  r = run_config(cfg, "--set stages=[heal]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("is complete in the archive, skipped"), std::string::npos) << r.err;
  EXPECT_EQ(count_in(r.err, "archived plan"), 0u) << r.err;

  // The same parent named by its plan id: the same healed plan (the id does not depend on the name), skipped.
  r = run_config(cfg, "--set stages=[heal] --set \"heal.plans=[{id: " + w.parent_id + ", name: again}]\"");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("again+heal [" + w.id + "] is complete in the archive, skipped"), std::string::npos) << r.err;

  // SIGTERM (Slurm's warning before the time limit) between steps: a checkpoint, exit 75 (requeue), and the
  // next start resumes from it (another seed: another healed plan).
  const fs::path term_log = dir / "term.log";
  const auto term = run_command("(" + divprune_binary() + " run " + cfg.string() +
                                " --threads 1 --set stages=[heal] --set heal.seed=2 2>" + term_log.string() +
                                " >/dev/null & pid=$!; until grep -q 'step 1/6' " + term_log.string() +
                                " 2>/dev/null; do sleep 0.1; done; kill -TERM $pid; wait $pid; echo rc=$?)");
  EXPECT_NE(term.out.find("rc=75"), std::string::npos) << term.out << read_file(term_log);
  EXPECT_NE(read_file(term_log).find("stop requested: heal of chop+heal checkpointed after step"), std::string::npos)
      << read_file(term_log);
  r = run_config(cfg, "--set stages=[heal] --set heal.seed=2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("resumes from"), std::string::npos) << r.err;
  EXPECT_EQ(heal_record_ids(RunArchive(archive)).size(), 2u);

  // Bad configurations: one error line, exit 2.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set heal.text=" + (assets_dir() / "wikitext2.test.txt").string(), "is also data.perplexity.text"},
      {"--set heal.steps=0", "heal.steps"},
      {"--set heal.tokens=1000", "either heal.steps or heal.tokens"},
      {"--set heal.plans=[] ", "names no plan"},
      {"--set \"heal.plans=[{id: 0000000000000000}]\"", "no plan 0000000000000000 under /plans"},
  };
  for (const auto& [set, message] : cases) {
    const auto e = run_config(cfg, "--set stages=[heal] " + set);
    EXPECT_EQ(e.exit_code, 2) << set << "\n" << e.err;
    EXPECT_NE(e.err.find(message), std::string::npos) << set << "\n" << e.err;
    EXPECT_EQ(count_in(e.err, "divprune: error:"), 1u) << set << "\n" << e.err;
  }
  const auto tp2 = run_config(cfg, "--set stages=[heal]", 2, 2);
  EXPECT_EQ(tp2.exit_code, 2) << tp2.err;
  EXPECT_NE(tp2.err.find("training supports tp = 1 only, found tp = 2"), std::string::npos) << tp2.err;
  EXPECT_EQ(count_in(tp2.err, "divprune: error:"), 1u) << tp2.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// The shared whole-corpus reference run (CTest fixture `wikitext_archive`, label slow): `divprune run
// tests/wikitext/reference-plans.yaml` into DIVPRUNE_WIKITEXT_ARCHIVE, in two invocations on the same archive:
//  1. the baseline over the whole WikiText-2 test set on 2 replicas x tp 2 (mpirun -np 4): the parallel run and
//     the work queue over 1303 chunks;
//  2. the four reference plans of ../shared/assets/README.md on one rank (the evaluate stage reads the
//     baseline from the archive).
// Five fp32 passes over the corpus in all (~1 min each on an idle 2-core machine), done once for every test
// that checks a whole-corpus number (compress_perplexity, cli_perplexity_wikitext2, parallel_cli_wikitext).
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/parallel/mpirun.hpp"
#include "tests/wikitext/wikitext_archive.hpp"

namespace divprune::test {
namespace {

namespace fs = std::filesystem;

TEST(WikitextRun, BaselineOnTwoReplicasTimesTp2ThenTheReferencePlansOnOneRank) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  const fs::path archive = wikitext_archive();
  // Always a fresh run: an archive left by an earlier build would be resumed, its complete parts skipped, and
  // the tests would read numbers of older code.
  fs::remove(archive);
  fs::create_directories(archive.parent_path());
  const std::string run = " run " + std::string(DIVPRUNE_WIKITEXT_CONFIG) + " --set assets=" + assets_dir().string() +
                          " --set archive=" + archive.string();
  const auto baseline = run_command(mpirun(4, 2400) + divprune_binary() + run + " --tp 2 --set stages=[baseline]");
  ASSERT_EQ(baseline.exit_code, 0) << baseline.err;
  const auto evaluate = run_command("timeout 2400 " + divprune_binary() + run + " --set stages=[evaluate]");
  ASSERT_EQ(evaluate.exit_code, 0) << evaluate.err;
  std::printf("%s%s", baseline.err.c_str(), evaluate.err.c_str());

  H5File f(archive, H5Mode::Read);
  EXPECT_EQ(f.attr_int("baseline", "complete"), 1);
  const auto plans = wikitext_plan_summaries();
  EXPECT_EQ(plans.size(), 4u);
}

}  // namespace
}  // namespace divprune::test

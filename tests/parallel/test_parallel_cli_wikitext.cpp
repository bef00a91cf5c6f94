// 2 replicas × tp 2 on 4 ranks score WikiText-2 test like one rank, each replica about half the chunks.
// The whole corpus is scored at 2 replicas x tp 2 once, by the baseline stage of the shared reference run
// (fixture test wikitext_run, tests/wikitext), and held to the fp32 PyTorch reference 72.8221 by
// cli_perplexity_wikitext2. Here `divprune perplexity` itself runs on 2 replicas x tp 2 over the corpus's first
// lines (its static split of the chunks over replicas) and must give the baseline's perplexity on those tokens to
// the 4 printed decimals, which is what "equal to one rank" means for the printed result.
#include <gtest/gtest.h>

#include <regex>

#include "tests/cli/cli_util.hpp"
#include "tests/parallel/mpirun.hpp"
#include "tests/wikitext/wikitext_archive.hpp"

namespace divprune::test {
namespace {

TEST(ParallelCliWikitext, TwoReplicasTimesTp2MatchTheReferenceRun) {
  ASSETS_OR_SKIP("tiny-llama2-trained/model.safetensors.index.json");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  WIKITEXT_ARCHIVE_OR_FAIL();
  TempDir tmp;
  write_wikitext_prefix(tmp / "prefix.txt", 120);
  const std::string args = " perplexity --model " + (assets_dir() / "tiny-llama2-trained").string() + " --tokenizer " +
                           (assets_dir() / "llama2-tokenizer.model").string() + " --text " +
                           (tmp / "prefix.txt").string();
  auto four = run_command(mpirun(4) + divprune_binary() + args + " --tp 2");
  ASSERT_EQ(four.exit_code, 0) << four.err;
  double ppl4 = 0;
  long tok4 = 0;
  ASSERT_TRUE(parse_ppl(four.out, &ppl4, &tok4)) << four.out;
  EXPECT_GT(tok4, 7000);
  const double expected = wikitext_prefix_perplexity(tok4);
  EXPECT_NEAR(ppl4, expected, 1e-4) << "the baseline gives " << expected << " on these " << tok4 << " tokens";
  // Both replica leaders report their share of the chunks: half each (odd counts: one more for replica 0).
  std::smatch m;
  const std::regex share(R"(replica (\d) scored (\d+) of (\d+) chunks)");
  int replicas = 0;
  for (auto it = std::sregex_iterator(four.err.begin(), four.err.end(), share); it != std::sregex_iterator(); ++it) {
    const long scored = std::stol((*it)[2]), total = std::stol((*it)[3]);
    EXPECT_GT(total, 20);
    EXPECT_NEAR(static_cast<double>(scored), total / 2.0, 1.0);
    ++replicas;
  }
  EXPECT_EQ(replicas, 2) << four.err;
  std::printf("first 120 lines at 2 replicas x tp 2: ppl %.4f, baseline %.4f over %ld tokens\n", ppl4, expected, tok4);
}

}  // namespace
}  // namespace divprune::test

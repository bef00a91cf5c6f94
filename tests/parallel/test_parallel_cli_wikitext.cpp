// 2 replicas × tp 2 on 4 ranks score WikiText-2 test like one rank, each replica about half the chunks. One rank
// is not rerun here (cli_perplexity_wikitext2 does that pass): both are held to the fp32 PyTorch reference of
// ../shared/assets/README.md, 72.8221, to the 4 printed decimals, which is what "equal to one rank" means for
// the printed result.
#include <gtest/gtest.h>

#include <regex>

#include "tests/parallel/mpirun.hpp"

namespace divprune::test {
namespace {

TEST(ParallelCliWikitext, TwoReplicasTimesTp2MatchTheReference) {
  ASSETS_OR_SKIP("tiny-llama2-trained/model.safetensors.index.json");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  const std::string args = " perplexity --model " + (assets_dir() / "tiny-llama2-trained").string() + " --tokenizer " +
                           (assets_dir() / "llama2-tokenizer.model").string() + " --text " +
                           (assets_dir() / "wikitext2.test.txt").string();
  auto four = run_command(mpirun(4) + divprune_binary() + args + " --tp 2");
  ASSERT_EQ(four.exit_code, 0) << four.err;
  double ppl4 = 0;
  long tok4 = 0;
  ASSERT_TRUE(parse_ppl(four.out, &ppl4, &tok4)) << four.out;
  EXPECT_EQ(tok4, 333547);
  EXPECT_NEAR(ppl4, 72.8221, 1e-4);
  // Both replica leaders report their share: 1303 chunks -> 652 and 651.
  std::smatch m;
  const std::regex share(R"(replica (\d) scored (\d+) of (\d+) chunks)");
  int replicas = 0;
  for (auto it = std::sregex_iterator(four.err.begin(), four.err.end(), share); it != std::sregex_iterator(); ++it) {
    const long scored = std::stol((*it)[2]), total = std::stol((*it)[3]);
    EXPECT_NEAR(static_cast<double>(scored), total / 2.0, 1.0);
    ++replicas;
  }
  EXPECT_EQ(replicas, 2) << four.err;
}

}  // namespace
}  // namespace divprune::test

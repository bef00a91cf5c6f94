// WikiText-2 test perplexity of tiny-llama2-trained (label slow): the reference protocol of
// ../shared/assets/README.md gives 72.82 over exactly 333,547 scored tokens (fp32 PyTorch: 72.8221).
// The whole corpus is scored once, by the baseline stage of the shared reference run (fixture test wikitext_run,
// tests/wikitext: `divprune run` on 2 replicas x tp 2); this test checks that number, and that `divprune perplexity`
// on one rank gives the baseline's perplexity on the corpus's first lines (the CLI and the baseline stage agree on
// every chunk they share; metrics_run checks them against each other at another ctx).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/cli/cli_util.hpp"
#include "tests/wikitext/wikitext_archive.hpp"

namespace divprune::test {
namespace {

TEST(PerplexityWikiText2, TrainedModelMatchesReference) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  WIKITEXT_ARCHIVE_OR_FAIL();
  H5File f(wikitext_archive(), H5Mode::Read);
  const double ppl = f.read_double("baseline/summary/perplexity")[0];
  const double tokens = f.read_double("baseline/summary/tokens")[0];
  EXPECT_EQ(tokens, static_cast<double>(kWikitextTokens));
  EXPECT_LE(std::abs(ppl - 72.82) / 72.82, 0.005) << "ppl " << ppl;
  // fp32 PyTorch on the same fp16 weights gives 72.8221 (assets README), compared at the 4 decimals the CLI prints.
  EXPECT_NEAR(std::round(ppl * 1e4) / 1e4, 72.8221, 1e-4) << "ppl " << ppl;
  report_measured("tiny-llama2-trained WikiText-2 test perplexity", fmt::format("{:.4f} over {:.0f} tokens", ppl, tokens));
}

TEST(PerplexityWikiText2, CliOnTheFirstLinesEqualsTheBaseline) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  WIKITEXT_ARCHIVE_OR_FAIL();
  TempDir tmp;
  write_wikitext_prefix(tmp / "prefix.txt", 120);
  const CommandResult r = run_cli("perplexity --model " + quote(assets_dir() / "tiny-llama2-trained") +
                                  " --tokenizer " + quote(assets_dir() / "llama2-tokenizer.model") + " --text " +
                                  quote(tmp / "prefix.txt"));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const PplLine ppl = parse_ppl_line(last_line(r.out));
  ASSERT_TRUE(ppl.ok) << "last line: " << last_line(r.out);
  EXPECT_GT(ppl.tokens, 7000);
  const double expected = wikitext_prefix_perplexity(ppl.tokens);
  EXPECT_NEAR(ppl.ppl, expected, 1e-4) << "the baseline gives " << expected << " on these " << ppl.tokens << " tokens";
  std::printf("first 120 lines: CLI ppl %.4f, baseline %.4f over %ld tokens\n", ppl.ppl, expected, ppl.tokens);
}

}  // namespace
}  // namespace divprune::test

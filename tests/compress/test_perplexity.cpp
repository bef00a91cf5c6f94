// WikiText-2 test perplexity of tiny-llama2-trained under the four reference plans of
// ../shared/assets/README.md ("Reference perplexities under compression"), read from configs/plans. The plans
// are evaluated once, over the whole corpus on one rank, by the shared reference run (fixture test wikitext_run,
// tests/wikitext): this test checks its archive.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/wikitext/wikitext_archive.hpp"

namespace divprune::test {
namespace {

struct Reference {
  const char* plan;  // plan name in the archive: the stem of configs/plans/<plan>.yaml
  double perplexity;
};

TEST(CompressPerplexity, ReferencePlansOnTinyLlama2TrainedWikiText2) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  WIKITEXT_ARCHIVE_OR_FAIL();
  const auto plans = wikitext_plan_summaries();
  const Reference references[] = {{"magnitude50_all", 76.0559},
                                  {"drop_layer4", 79.0749},
                                  {"int8_all", 72.8253},
                                  {"two_four_mlp", 79.1376}};
  for (const Reference& ref : references) {
    ASSERT_TRUE(plans.count(ref.plan)) << ref.plan << " is not in " << wikitext_archive();
    const auto& s = plans.at(ref.plan);
    const double ppl = s.at(SummaryMetric::Perplexity);
    std::printf("%-22s ppl %.4f (reference %.4f, %+.3f%%) tokens %.0f\n", ref.plan, ppl, ref.perplexity,
                100.0 * (ppl / ref.perplexity - 1.0), s.at(SummaryMetric::Tokens));
    EXPECT_EQ(s.at(SummaryMetric::Tokens), static_cast<double>(kWikitextTokens)) << ref.plan;
    EXPECT_NEAR(ppl / ref.perplexity, 1.0, 0.003) << ref.plan;
  }
}

}  // namespace
}  // namespace divprune::test

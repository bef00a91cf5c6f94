// WikiText-2 test perplexity of tiny-llama2-trained under the four reference plans of
// ../shared/assets/README.md ("Reference perplexities under compression"), read from configs/plans, applied
// one after the other to the same working copy. Each full corpus pass takes about 100 s on 2 CPU cores.
#include <cblas.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <numeric>

#include "compress/apply.hpp"
#include "compress/plan.hpp"
#include "metrics/corpus.hpp"
#include "metrics/perplexity.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/tokenizer.hpp"
#include "tests/support/assets.hpp"

namespace divprune {
namespace {

struct Reference {
  const char* plan;
  double perplexity;
};

TEST(CompressPerplexity, ReferencePlansOnTinyLlama2TrainedWikiText2) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  const auto assets = ::divprune::test::assets_dir();
  const Tokenizer tokenizer(assets / "llama2-tokenizer.model");
  const auto chunks = chunk_stream(tokenize_corpus(tokenizer, assets / "wikitext2.test.txt"), 256);
  std::vector<size_t> all(chunks.size());
  std::iota(all.begin(), all.end(), 0);

  const auto checkpoint = open_checkpoint(assets / "tiny-llama2-trained");
  const ModelConfig& config = checkpoint->config();
  const HostWeights pristine = load_host_weights(*checkpoint, make_shard_layout(config, {0, 1}));
  const auto backend = make_backend(BackendKind::Cpu);
  SoloCommunicator comm;
  LlamaModel model(config, pristine.layout, *backend, comm, upload_weights(*backend, pristine));
  // One worker per core over the shared working copy (as ModelReplica::workers() does): a plan applied to
  // model.weights() is seen by both.
  openblas_set_num_threads(1);
  const auto backend2 = make_backend(BackendKind::Cpu);
  LlamaModel model2(config, pristine.layout, *backend2, comm, model.shared_weights());
  const std::vector<LlamaModel*> workers = {&model, &model2};

  const std::filesystem::path plans = DIVPRUNE_PLANS_DIR;
  const Reference references[] = {{"magnitude50_all.yaml", 76.0559},
                                  {"drop_layer4.yaml", 79.0749},
                                  {"int8_all.yaml", 72.8253},
                                  {"two_four_mlp.yaml", 79.1376}};
  for (const Reference& ref : references) {
    const auto start = std::chrono::steady_clock::now();
    apply_plan(load_plan(plans / ref.plan, config), pristine, model);
    const double apply_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const NllSum sum = score_chunks(workers, chunks, all, config.bos_id);
    const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double ppl = sum.perplexity();
    std::printf("%-22s ppl %.4f (reference %.4f, %+.3f%%) tokens %lld; apply %.3f s, total %.1f s\n", ref.plan, ppl,
                ref.perplexity, 100.0 * (ppl / ref.perplexity - 1.0), static_cast<long long>(sum.tokens), apply_s,
                total_s);
    std::fflush(stdout);
    EXPECT_EQ(sum.tokens, 333547);
    EXPECT_NEAR(ppl / ref.perplexity, 1.0, 0.003) << ref.plan;
  }
}

}  // namespace
}  // namespace divprune

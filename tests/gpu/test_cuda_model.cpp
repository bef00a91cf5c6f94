// The whole model on the CUDA backend (bf16) against the CPU backend (fp32 reference) on real checkpoints.
// Label gpu: runs only where a CUDA device is visible; with none, every test fails in SetUp (never skips).
#include <gtest/gtest.h>

#include <cmath>

#include "archive/h5.hpp"
#include "core/communicator.hpp"
#include "kernels/backend.hpp"
#include "model/checkpoint.hpp"
#include "model/generate.hpp"
#include "model/llama.hpp"
#include "tests/support/assets.hpp"

namespace divprune::test {
namespace {

class CudaModelTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(cuda_backend_available()) << "no CUDA device is visible"; }

  struct Replica {
    std::unique_ptr<Checkpoint> checkpoint;
    std::unique_ptr<Backend> backend;
    SoloCommunicator comm;
    std::unique_ptr<LlamaModel> model;
  };
  static std::unique_ptr<Replica> load(const std::string& dir, BackendKind kind) {
    auto r = std::make_unique<Replica>();
    r->checkpoint = open_checkpoint(assets_dir() / dir);
    const ShardLayout layout = make_shard_layout(r->checkpoint->config(), TpShard{0, 1});
    r->backend = make_backend(kind, 0);
    r->model = std::make_unique<LlamaModel>(r->checkpoint->config(), layout, *r->backend, r->comm,
                                            upload_weights(*r->backend, load_host_weights(*r->checkpoint, layout)));
    return r;
  }
  static std::vector<float> logits(Replica& r, const std::vector<int32_t>& ids) {
    KvCache cache = r.model->make_cache(static_cast<int64_t>(ids.size()));
    Tensor t = r.model->forward(ids, 0, cache);
    std::vector<float> out(static_cast<size_t>(t.numel()));
    r.backend->download(t, out);
    return out;
  }
};

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    ref = std::max(ref, std::fabs(static_cast<double>(want[i])));
  }
  return diff / ref;
}

TEST_F(CudaModelTest, LogitsMatchCpuWithinBf16Tolerance) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  Shape dims;
  const auto ids = H5File(assets_dir() / "tiny-llama2-mha" / "reference.h5", H5Mode::Read).read_int32("input_ids", &dims);
  const std::vector<int32_t> row(ids.begin(), ids.begin() + dims[1]);
  for (const char* dir : {"tiny-llama2-mha", "tiny-llama2-trained"}) {
    auto cpu = load(dir, BackendKind::Cpu);
    auto gpu = load(dir, BackendKind::Cuda);
    const double err = relative_error(logits(*gpu, row), logits(*cpu, row));
    EXPECT_LE(err, 2e-2) << dir;
    std::printf("[ measured ] %s logits CUDA vs CPU max|d|/max|ref| = %.3g\n", dir, err);
  }
}

TEST_F(CudaModelTest, GreedyIdsEqualCpuForSixteenTokens) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  auto cpu = load("tiny-llama2-trained", BackendKind::Cpu);
  auto gpu = load("tiny-llama2-trained", BackendKind::Cuda);
  const std::vector<int32_t> prompt = {1, 450, 4955, 310, 278};  // BOS "The history of the"
  EXPECT_EQ(greedy_generate(*gpu->model, prompt, 16), greedy_generate(*cpu->model, prompt, 16));
}

TEST_F(CudaModelTest, WikiTextPerplexityAndTwoReplicasOnOneGpu) {
  ASSETS_OR_SKIP("wikitext2.test.txt");
  const std::string args = " perplexity --backend cuda -q --model " + (assets_dir() / "tiny-llama2-trained").string() +
                           " --tokenizer " + (assets_dir() / "llama2-tokenizer.model").string() + " --text " +
                           (assets_dir() / "wikitext2.test.txt").string();
  auto one = run_divprune(args);
  auto two = run_command("timeout 900 mpirun --oversubscribe --allow-run-as-root -np 2 " + divprune_binary() + args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(two.exit_code, 0) << two.err;
  double ppl1 = 0, ppl2 = 0;
  long tok1 = 0, tok2 = 0;
  ASSERT_EQ(std::sscanf(one.out.c_str() + one.out.rfind("ppl "), "ppl %lf tokens %ld", &ppl1, &tok1), 2) << one.out;
  ASSERT_EQ(std::sscanf(two.out.c_str() + two.out.rfind("ppl "), "ppl %lf tokens %ld", &ppl2, &tok2), 2) << two.out;
  EXPECT_EQ(tok1, 333547);
  EXPECT_NEAR(ppl1, 72.82, 0.005 * 72.82);
  // Two replicas (tp 1) share the GPU and split the chunks: same sums, so the same perplexity.
  EXPECT_EQ(tok2, tok1);
  EXPECT_NEAR(ppl2, ppl1, 1e-6 * ppl1);
  std::printf("[ measured ] CUDA WikiText-2 ppl %.4f (1 replica), %.4f (2 replicas)\n", ppl1, ppl2);
}

}  // namespace
}  // namespace divprune::test

// The CLI under mpirun: results equal the single-rank ones, and errors end every rank with one message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "archive/h5.hpp"
#include "tests/parallel/mpirun.hpp"

namespace divprune::test {
namespace {

std::string mha() { return (assets_dir() / "tiny-llama2-mha").string(); }

int count_error_lines(const std::string& err) {
  int n = 0;
  for (size_t at = err.find("divprune: error:"); at != std::string::npos; at = err.find("divprune: error:", at + 1)) ++n;
  return n;
}

TEST(ParallelCli, LogitsAtTp2WithTwoReplicasMatchReference) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  const auto dir = std::filesystem::temp_directory_path() / ("divprune-pcli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string ref = (assets_dir() / "tiny-llama2-mha" / "reference.h5").string();
  auto one = run_divprune("logits -q --model " + mha() + " --input " + ref + " --out " + (dir / "tp1.h5").string());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto four = run_command(mpirun(4) + divprune_binary() + " logits -q --tp 2 --model " + mha() + " --input " + ref +
                          " --out " + (dir / "tp2.h5").string());
  ASSERT_EQ(four.exit_code, 0) << four.err;
  const auto a = H5File(dir / "tp1.h5", H5Mode::Read).read_float("logits");
  const auto b = H5File(dir / "tp2.h5", H5Mode::Read).read_float("logits");
  const auto r = H5File(ref, H5Mode::Read).read_float("logits");
  ASSERT_EQ(a.size(), r.size());
  ASSERT_EQ(b.size(), r.size());
  float max_ref = 0, d_ab = 0, d_ar = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(r[i]));
    d_ab = std::max(d_ab, std::fabs(a[i] - b[i]));
    d_ar = std::max(d_ar, std::fabs(a[i] - r[i]));
  }
  EXPECT_LE(d_ab / max_ref, 1e-5);
  EXPECT_LE(d_ar / max_ref, 1e-4);
  std::filesystem::remove_all(dir);
}

TEST(ParallelCli, GreedyAtTp4EqualsSingleRank) {
  ASSETS_OR_SKIP("stories260K.bin");
  const std::string model = (assets_dir() / "stories260K.bin").string();
  auto one = run_divprune("generate -q --model " + model + " --prompt-ids 1 -n 48");
  auto four = run_command(mpirun(4) + divprune_binary() + " generate -q --tp 4 --model " + model + " --prompt-ids 1 -n 48");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(four.exit_code, 0) << four.err;
  EXPECT_EQ(one.out, four.out);
}

TEST(ParallelCli, TpNotDividingHeadsFailsOnceEverywhere) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  auto r = run_command(mpirun(3) + divprune_binary() + " generate --tp 3 --model " + mha() + " --prompt-ids 1 -n 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "timed out: a rank hung";
  EXPECT_EQ(count_error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("does not divide num_attention_heads"), std::string::npos) << r.err;
}

TEST(ParallelCli, WorldSizeNotMultipleOfTpFailsOnce) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  auto r = run_command(mpirun(3) + divprune_binary() + " generate --tp 2 --model " + mha() + " --prompt-ids 1 -n 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "timed out: a rank hung";
  EXPECT_EQ(count_error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("does not divide the world size 3"), std::string::npos) << r.err;
}

TEST(ParallelCli, OneRankFailingToOpenItsFileStopsAllRanks) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  // MPMD launch: rank 1 is given a path that does not exist, ranks 0, 2, 3 the real model.
  const std::string good = divprune_binary() + " generate --tp 2 --prompt-ids 1 -n 2 --model " + mha();
  const std::string bad = divprune_binary() + " generate --tp 2 --prompt-ids 1 -n 2 --model /nonexistent/model-dir";
  auto r = run_command("timeout 600 mpirun --oversubscribe --allow-run-as-root -np 1 " + good + " : -np 1 " + bad +
                       " : -np 2 " + good);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "timed out: a rank hung";
  EXPECT_EQ(count_error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/model-dir"), std::string::npos) << r.err;
}

TEST(ParallelCli, RunErrorOnOneRankIsPrintedOnce) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  // MPMD launch: rank 1 alone is told to read a text that does not exist
  // (a rank-local error in the validation every run does first); one line, every rank exits, nothing written.
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("divprune-run-once-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path a = assets_dir();
  std::ofstream(dir / "run.yaml") << "model: " << mha() << "\ntokenizer: " << (a / "llama2-tokenizer.model").string()
                                  << "\narchive: " << (dir / "a.h5").string() << "\nstages: [baseline]\ndata:\n"
                                  << "  perplexity: {text: " << (a / "wikitext2.test.txt").string() << ", ctx: 16, max_chunks: 1}\n";
  const std::string good = divprune_binary() + " run -q --threads 1 " + (dir / "run.yaml").string();
  auto r = run_command("timeout 600 mpirun --oversubscribe --allow-run-as-root -np 1 " + good + " : -np 1 " + good +
                       " --set data.perplexity.text=/nonexistent/text.txt");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_error_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/text.txt"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "a.h5"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

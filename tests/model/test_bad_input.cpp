// Bad checkpoints through the library: each raises an InputError whose message names the file and the
// problem (DESIGN: "Errors are values or exceptions with context, never a crash").
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "tests/model/broken_inputs.hpp"

namespace divprune::test {
namespace {

class BadCheckpoint : public ::testing::TestWithParam<size_t> {};

TEST_P(BadCheckpoint, RaisesInputErrorNamingFileAndProblem) {
  const BrokenCase& c = broken_cases()[GetParam()];
  ASSETS_OR_SKIP(c.asset);
  TempDir tmp;
  const BrokenInput input = c.make(tmp.path());
  std::unique_ptr<Checkpoint> checkpoint;
  bool opened = false;
  try {
    checkpoint = open_checkpoint(input.model);
    opened = true;
    load_host_weights(*checkpoint, make_shard_layout(checkpoint->config(), TpShard{0, 1}));
    FAIL() << "no error for " << input.model;
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(input.file.string()), std::string::npos) << "message does not name " << input.file << ": " << message;
    EXPECT_NE(message.find(input.problem), std::string::npos) << "message lacks \"" << input.problem << "\": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "message is not one line: " << message;
    // Problems of the weights are found when they are loaded; everything else when the checkpoint is opened.
    EXPECT_EQ(opened, input.needs_weights) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, BadCheckpoint, ::testing::Range<size_t>(0, broken_cases().size()), broken_case_name);

TEST(BadCheckpoint, TpNotDividingHeadsIsAnInputError) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  auto checkpoint = open_checkpoint(mha_dir());
  try {
    make_shard_layout(checkpoint->config(), TpShard{0, 3});
    FAIL() << "tp 3 accepted for 4 heads";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("--tp 3 does not divide num_attention_heads = 4"), std::string::npos) << message;
    EXPECT_NE(message.find((mha_dir() / "config.json").string()), std::string::npos) << message;
  }
}

TEST(BadCheckpoint, AssetsAreUntouched) {
  // The broken copies above never write into the shared assets.
  ASSETS_OR_SKIP("tiny-llama2-mha/model.safetensors");
  EXPECT_EQ(fs::file_size(mha_dir() / "model.safetensors"), 8395536u);
  EXPECT_NO_THROW(open_checkpoint(mha_dir()));
}

}  // namespace
}  // namespace divprune::test

// Bad input through the binary: exit code 2, exactly one stderr line `divprune: error: ...` naming the file
// and the problem, nothing on stdout, no output file left behind.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.hpp"
#include "tests/model/broken_inputs.hpp"

namespace divprune::test {
namespace {

void expect_one_error_line(const CommandResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  const auto lines = split_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << describe(r);
  EXPECT_EQ(lines[0].rfind("divprune: error: ", 0), 0u) << lines[0];
  for (const auto& needle : needles) EXPECT_NE(lines[0].find(needle), std::string::npos) << "lacks \"" << needle << "\": " << lines[0];
}

class CliBadCheckpoint : public ::testing::TestWithParam<size_t> {};

TEST_P(CliBadCheckpoint, ExitsTwoWithOneLineNamingTheFile) {
  const BrokenCase& c = broken_cases()[GetParam()];
  ASSETS_OR_SKIP(c.asset);
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  TempDir tmp;
  const BrokenInput input = c.make(tmp.path());
  // `info` only opens the checkpoint; `logits` also loads the weights.
  if (!input.needs_weights) {
    const CommandResult info = run_cli("info --model " + quote(input.model));
    expect_one_error_line(info, {input.file.string(), input.problem});
    EXPECT_TRUE(info.out.empty()) << info.out;
  } else {
    const CommandResult info = run_cli("info --model " + quote(input.model));
    EXPECT_EQ(info.exit_code, 0) << describe(info);
  }
  const fs::path out = tmp / "logits.h5";
  const CommandResult logits = run_cli("logits --model " + quote(input.model) + " --input " +
                                            quote(assets_dir() / "tiny-llama2-mha/reference.h5") + " --out " + quote(out));
  expect_one_error_line(logits, {input.file.string(), input.problem});
  EXPECT_TRUE(logits.out.empty()) << logits.out;
  EXPECT_FALSE(fs::exists(out));
}

INSTANTIATE_TEST_SUITE_P(Cases, CliBadCheckpoint, ::testing::Range<size_t>(0, broken_cases().size()), broken_case_name);

TEST(CliBadArguments, MissingOrBrokenSideFiles) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  const std::string model = quote(mha_dir());
  const std::string tokenizer = quote(assets_dir() / "llama2-tokenizer.model");
  const std::string missing = (tmp / "missing.h5").string();
  expect_one_error_line(run_cli("logits --model " + model + " --input " + quote(missing) + " --out " +
                                     quote(tmp / "o.h5")),
                        {missing, "no such file"});
  write_file(tmp / "not-hdf5.h5", "plain text");
  expect_one_error_line(run_cli("logits --model " + model + " --input " + quote(tmp / "not-hdf5.h5") +
                                     " --out " + quote(tmp / "o.h5")),
                        {(tmp / "not-hdf5.h5").string(), "cannot open as an HDF5 file"});
  const std::string text = (tmp / "missing.txt").string();
  expect_one_error_line(run_cli("perplexity --model " + model + " --tokenizer " + tokenizer + " --text " + quote(text)),
                        {text, "cannot open text file"});
  write_file(tmp / "blank.txt", "\n   \n");
  expect_one_error_line(run_cli("perplexity --model " + model + " --tokenizer " + tokenizer + " --text " +
                                     quote(tmp / "blank.txt")),
                        {(tmp / "blank.txt").string(), "every line is blank"});
  write_file(tmp / "bad.model", "not a sentencepiece model");
  expect_one_error_line(run_cli("generate -q --model " + model + " --tokenizer " + quote(tmp / "bad.model") +
                                     " --prompt hello"),
                        {(tmp / "bad.model").string(), "not a SentencePiece model"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1,x,3"), {"--prompt-ids", "\"x\""});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1,40000"), {"token id 40000"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 -n 600"), {"exceeds the model's context 512"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt hello"), {"--prompt needs --tokenizer"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 --tp 3"), {"--tp 3"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 --backend tpu"), {"--backend"});
}

}  // namespace
}  // namespace divprune::test

// perplexity --plan with calibrated operators (issue 16) through the binary: bad parameters, a missing
// --calibration and a calibration text shorter than one sequence exit 2 with one error line; a valid calibrated
// plan runs and changes the perplexity (-q: the plan is read once the model config is, after the "loaded" log
// line). tiny-llama2-mha, a few lines of text: about a second per run.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.hpp"
#include "tests/model/broken_inputs.hpp"

namespace divprune::test {
namespace {

void expect_one_error_line(const CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  const auto lines = split_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << describe(r);
  EXPECT_EQ(lines[0].rfind("divprune: error: ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find(needle), std::string::npos) << "lacks \"" << needle << "\": " << lines[0];
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(CliCalibration, BadPlansAndTextsExitTwoAndAGoodPlanRuns) {
  ASSETS_OR_SKIP("tiny-llama2-mha/model.safetensors");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 30; ++i) text += "The cat sat on the mat and looked at the birds in the garden.\n";
  write_file(tmp / "text.txt", text);
  write_file(tmp / "short.txt", "Too short.\n");
  write_file(tmp / "bits5.yaml", "components:\n  - {layers: all, names: [q], quant: {method: gptq, bits: 5}}\n");
  write_file(tmp / "group.yaml", "components:\n  - {layers: all, names: [down], quant: {method: rtn, group_size: 64}}\n");
  write_file(tmp / "nm.yaml", "components:\n  - {layers: all, names: [up], prune: {method: wanda, pattern: \"4:2\"}}\n");
  write_file(tmp / "good.yaml",
             "components:\n  - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: sparsegpt, "
             "sparsity: 0.5}, quant: {method: gptq, bits: 4, group_size: 16}}\n");
  const std::string base = "perplexity -q --model " + quote(mha_dir()) + " --tokenizer " +
                           quote(assets_dir() / "llama2-tokenizer.model") + " --text " + quote(tmp / "text.txt");
  const std::string calib = " --calibration " + quote(tmp / "text.txt") + " --calibration-sequences 2 --calibration-length 32";
  expect_one_error_line(run_cli(base + " --plan " + quote(tmp / "bits5.yaml") + calib),
                        "bits5.yaml: components[0].quant.bits (line 2): bits 5 is not one of 2, 3, 4, 8");
  expect_one_error_line(run_cli(base + " --plan " + quote(tmp / "group.yaml") + calib),
                        "group_size 64 does not divide the 176 input columns of down");
  expect_one_error_line(run_cli(base + " --plan " + quote(tmp / "nm.yaml") + calib),
                        "nm.yaml: components[0].prune.pattern (line 2): pattern 4:2 must keep N of every M");
  expect_one_error_line(run_cli(base + " --plan " + quote(tmp / "good.yaml")), "give --calibration TEXT");
  expect_one_error_line(run_cli(base + " --plan " + quote(tmp / "good.yaml") + " --calibration " +
                                quote(tmp / "short.txt") + " --calibration-length 64"),
                        (tmp / "short.txt").string() + ": the calibration text holds");

  const CommandResult dense = run_cli(base);
  ASSERT_EQ(dense.exit_code, 0) << describe(dense);
  const CommandResult good = run_cli(base + " --plan " + quote(tmp / "good.yaml") + calib);
  ASSERT_EQ(good.exit_code, 0) << describe(good);
  const double ppl_dense = parse_ppl_line(last_line(dense.out)).ppl, ppl_good = parse_ppl_line(last_line(good.out)).ppl;
  EXPECT_TRUE(std::isfinite(ppl_good));
  EXPECT_NE(ppl_good, ppl_dense);
}

}  // namespace
}  // namespace divprune::test

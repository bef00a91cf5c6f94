// `divprune run` with a `calibration:` section (issue 16): a wanda and a gptq plan evaluated by the run equal
// `divprune perplexity --plan FILE --calibration TEXT` with the same calibration settings (cached, and sequential
// for wanda); calibrated plans' ids depend on the calibration text and mode while uncalibrated ones keep theirs;
// the calibration text may not be the evaluation text (exit 2). tiny-llama2-trained, 12 lines of WikiText-2
// test, 4 x 64 calibration tokens: a few seconds.
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

const std::string kWanda =
    "components: [{layers: all, names: [q, k, v, o, gate, up, down], prune: {method: wanda, sparsity: 0.5}}]\n";
const std::string kGptq =
    "components: [{layers: all, names: [q, k, v, o, gate, up, down], quant: {method: gptq, bits: 4, group_size: 16}}]\n";
const std::string kMagnitude =
    "components: [{layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}}]\n";

void head_lines(const fs::path& from, const fs::path& to, int lines, int skip = 0) {
  std::ifstream in(from);
  std::ofstream out(to);
  std::string line;
  for (int i = 0; i < skip + lines && std::getline(in, line); ++i)
    if (i >= skip) out << line << "\n";
}

std::string run_yaml(const fs::path& dir, const std::string& archive, const std::string& calibration,
                     const std::string& mode, const std::vector<std::string>& plans = {"wanda", "gptq", "magnitude"}) {
  std::ostringstream c;
  c << "model: " << (assets_dir() / "tiny-llama2-trained").string() << "\n"
    << "tokenizer: " << (assets_dir() / "llama2-tokenizer.model").string() << "\n"
    << "archive: " << (dir / archive).string() << "\n"
    << "stages: [baseline, evaluate]\n"
    << "data:\n  perplexity: {text: " << (dir / "text.txt").string() << ", ctx: 128}\n"
    << "  logprobs: {store: full, max_tokens: 128}\n"
    << "calibration: {text: " << (dir / calibration).string() << ", sequences: 4, length: 64, seed: 3, mode: " << mode
    << "}\n"
    << "evaluate:\n  plans:\n";
  for (const std::string& p : plans) c << "    - " << (dir / (p + ".yaml")).string() << "\n";
  return c.str();
}

double archived_ppl(const fs::path& archive, const std::string& id) {
  H5File f(archive, H5Mode::Read);
  return f.read_double("plans/" + id + "/summary/perplexity")[0];
}

double cli_ppl(const fs::path& dir, const std::string& plan, const std::string& calibration, const std::string& mode) {
  const auto r = run_divprune(" perplexity -q --model " + (assets_dir() / "tiny-llama2-trained").string() +
                              " --tokenizer " + (assets_dir() / "llama2-tokenizer.model").string() + " --text " +
                              (dir / "text.txt").string() + " --ctx 128 --plan " + (dir / plan).string() +
                              " --calibration " + (dir / calibration).string() +
                              " --calibration-sequences 4 --calibration-length 64 --calibration-seed 3"
                              " --calibration-mode " + mode);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  double ppl = 0;
  long tokens = 0;
  EXPECT_TRUE(parse_ppl(r.out, &ppl, &tokens)) << r.out;
  return ppl;
}

TEST(RunCalibration, CalibratedPlansEqualTheCliAndTheirIdsFollowTheCalibration) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  head_lines(assets_dir() / "wikitext2.test.txt", dir / "text.txt", 12);
  head_lines(assets_dir() / "wikitext2.valid.txt", dir / "calib.txt", 60);
  head_lines(assets_dir() / "wikitext2.valid.txt", dir / "calib2.txt", 60, 200);
  std::ofstream(dir / "wanda.yaml") << kWanda;
  std::ofstream(dir / "gptq.yaml") << kGptq;
  std::ofstream(dir / "magnitude.yaml") << kMagnitude;

  // Cached mode: both calibrated plans equal the CLI (which prints 4 decimals).
  auto r = run_config(write_config(dir, "a.yaml", run_yaml(dir, "a.h5", "calib.txt", "cached")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("calibration: statistics of 4 x 64 tokens"), std::string::npos) << r.err;
  const auto a = plan_ids(dir / "a.h5");
  ASSERT_EQ(a.size(), 3u);
  const double wanda = archived_ppl(dir / "a.h5", a.at("wanda")), gptq = archived_ppl(dir / "a.h5", a.at("gptq"));
  EXPECT_NEAR(wanda, cli_ppl(dir, "wanda.yaml", "calib.txt", "cached"), 1e-4);
  EXPECT_NEAR(gptq, cli_ppl(dir, "gptq.yaml", "calib.txt", "cached"), 1e-4);
  EXPECT_NE(wanda, archived_ppl(dir / "a.h5", a.at("magnitude")));
  std::printf("cached: wanda ppl %.4f, gptq-4 ppl %.4f\n", wanda, gptq);

  // Another calibration text: a new id for the calibrated plan, the same for magnitude.
  r = run_config(write_config(dir, "b.yaml", run_yaml(dir, "b.h5", "calib2.txt", "cached", {"wanda", "magnitude"})));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto b = plan_ids(dir / "b.h5");
  EXPECT_NE(a.at("wanda"), b.at("wanda"));
  EXPECT_EQ(a.at("magnitude"), b.at("magnitude"));
  EXPECT_NE(wanda, archived_ppl(dir / "b.h5", b.at("wanda")));

  // Sequential mode: another id again, and the CLI's sequential result.
  r = run_config(write_config(dir, "c.yaml", run_yaml(dir, "c.h5", "calib.txt", "sequential", {"wanda", "magnitude"})));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto c = plan_ids(dir / "c.h5");
  EXPECT_NE(a.at("wanda"), c.at("wanda"));
  EXPECT_EQ(a.at("magnitude"), c.at("magnitude"));
  EXPECT_NEAR(archived_ppl(dir / "c.h5", c.at("wanda")), cli_ppl(dir, "wanda.yaml", "calib.txt", "sequential"), 1e-4);

  // The evaluation text as calibration text: exit 2, one line naming the key.
  r = run_config(write_config(dir, "d.yaml", run_yaml(dir, "d.h5", "text.txt", "cached")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("calibration.text"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("must not be the evaluation text data.perplexity.text"), std::string::npos) << r.err;
  // A calibrated plan without a calibration section: exit 2.
  std::string none = run_yaml(dir, "e.h5", "calib.txt", "cached");
  none.erase(none.find("calibration:"), none.find("evaluate:") - none.find("calibration:"));
  r = run_config(write_config(dir, "e.yaml", none));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("`calibration:` section"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

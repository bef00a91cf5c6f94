// The search stages and the sensitivity sweep over the calibrated operators (issue 16): `space.methods` with
// wanda and sparsegpt, `sensitivity.method: wanda`, under a `calibration:` section. Every plan is archived with
// the calibrated feature layout, calibrated plans are drawn and evaluated, and the predictor is trained on the
// calibrated layout. tiny-llama2-trained, 6 samples, one search round: slow.
#include <gtest/gtest.h>

#include "compress/plan.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchCalibrated, WandaAndSparseGptInTheSpaceAndTheSensitivitySweep) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  std::string sections = search_sections(6, 1, 2);
  sections.replace(sections.find("[magnitude, magnitude_row]"), 26, "[wanda, sparsegpt, magnitude]");
  sections += "calibration: {text: " + (assets_dir() / "ptb.valid.txt").string() + ", sequences: 4, length: 32}\n"
              "sensitivity: {steps: [0.5], method: wanda, components: [q, down], layers: [0, 5], int8: false, "
              "remove_layers: false}\n";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, sections));
  const auto r = run_config(cfg, "--set stages=[baseline,sensitivity,sample,train,search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_in(r.err, "calibration: statistics of 4 x 32 tokens"), 1u) << r.err;  // once per run

  H5File f(archive, H5Mode::Read);
  const size_t plain = 6 * kFeaturesPerLayer, names = f.read_strings("plans/feature_names").size();
  EXPECT_GT(names, plain);  // the calibrated tail follows the original block
  size_t wanda = 0, sparsegpt = 0, plans = 0;
  for (const std::string& id : f.children("plans")) {
    if (!f.is_group("plans/" + id)) continue;
    ++plans;
    EXPECT_EQ(f.read_float("plans/" + id + "/features").size(), names) << id;
    const std::string yaml = f.attr_string("plans/" + id, "plan_yaml");
    wanda += yaml.find("wanda") != std::string::npos;
    sparsegpt += yaml.find("sparsegpt") != std::string::npos;
  }
  std::printf("%zu plans, %zu with wanda, %zu with sparsegpt, %zu features\n", plans, wanda, sparsegpt, names);
  EXPECT_GE(wanda, 4u);  // the 4 sensitivity plans at least, and sampled ones
  EXPECT_GE(sparsegpt, 1u);
  EXPECT_EQ(f.read_double("search/predictor/feature_gain").size(), names + 6 + 7 + 2);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// The search stages and the sensitivity sweep over the calibrated operators (issue 16): `space.methods` with
// wanda and sparsegpt, `sensitivity.method: wanda`, under a `calibration:` section. Every plan is archived with
// the calibrated feature layout, calibrated plans are drawn and evaluated, and the predictor is trained on the
// calibrated layout. tiny-llama2-trained, 6 samples, one search round: slow.
#include <gtest/gtest.h>

#include <map>

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

// A quantization choice per component (space.quant): sampled plans carry int8, rtn and gptq components
// (gptq-4 at group 128 only where it divides the columns: not down's 688), their archived features record them, the
// search runs over them. Then the archive is resumed without the `calibration:` section, whose feature layout is
// the original one: refused with exit 2 and one line, not read as the shorter layout. 6 samples, 1 round: slow.
TEST(SearchCalibrated, QuantizationChoicePerComponentAndFeatureLayoutOnResume) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  std::string sections = search_sections(6, 1, 2);
  sections.replace(sections.find("  int8: true\n"), 13, "  quant: [none, int8, rtn-4, gptq-4, {method: gptq, bits: 3, group_size: -1}]\n");
  const std::string calibration =
      "calibration: {text: " + (assets_dir() / "ptb.valid.txt").string() + ", sequences: 2, length: 32}\n";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, sections + calibration));
  const auto r = run_config(cfg, "--set stages=[baseline,sample,train,search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  size_t names = 0;
  std::map<std::string, size_t> counts;
  {
    H5File f(archive, H5Mode::Read);
    const std::vector<std::string> feature_names = f.read_strings("plans/feature_names");
    names = feature_names.size();
    const size_t tail = 6 * kFeaturesPerLayer;
    for (const std::string& id : f.children("plans")) {
      if (!f.is_group("plans/" + id)) continue;
      const std::string yaml = f.attr_string("plans/" + id, "plan_yaml");
      const std::vector<float> x = f.read_float("plans/" + id + "/features");
      ASSERT_EQ(x.size(), names);
      for (const char* word : {"int8", "rtn", "gptq"}) counts[word] += yaml.find(word) != std::string::npos;
      // gptq-4 (group 128) never on down; the features' gptq flags agree with the YAML.
      size_t gptq_flags = 0;
      for (size_t k = tail; k < names; k += kCalibratedFeatures) {
        gptq_flags += x[k + 4] > 0.5f;
        if (feature_names[k].find(".down.") != std::string::npos && x[k + 4] > 0.5f) EXPECT_EQ(x[k + 7], -1.0f) << id;
      }
      EXPECT_EQ(gptq_flags > 0, yaml.find("gptq") != std::string::npos) << id;
    }
  }
  std::printf("plans with int8 %zu, rtn %zu, gptq %zu; %zu features\n", counts["int8"], counts["rtn"], counts["gptq"],
              names);
  for (const char* word : {"int8", "rtn", "gptq"}) EXPECT_GE(counts[word], 3u) << word;

  // The same archive without the calibration section: another feature layout, refused before any stage.
  const auto plain = write_config(dir, "plain.yaml", search_config(archive, search_sections(6, 1, 2)));
  const auto refused = run_config(plain, "--set stages=[baseline,sample]");
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_NE(refused.err.find("/plans/feature_names holds " + std::to_string(names) + " plan features, this run writes " +
                             std::to_string(6 * kFeaturesPerLayer)),
            std::string::npos)
      << refused.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

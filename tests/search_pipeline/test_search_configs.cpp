// Every shipped configuration with search sections parses, and its search space and budget validate against
// the model it names (Llama-2 shapes for the cluster configs, tiny-llama2-trained for the others).
#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "pipelines/heldout.hpp"
#include "pipelines/search_common.hpp"
#include "pipelines/sensitivity.hpp"
#include "tests/support/assets.hpp"
#include "tests/support/model_shapes.hpp"

namespace divprune {
namespace {

const std::filesystem::path kConfigs = std::filesystem::path(DIVPRUNE_SOURCE_DIR) / "configs";

using test::llama_shape;

TEST(SearchConfigs, ShippedConfigsValidate) {
  const std::vector<std::pair<std::string, ModelConfig>> cases = {
      {"demo.yaml", llama_shape(6, 256, 688, 8, 8)},
      {"search-tiny-trained.yaml", llama_shape(6, 256, 688, 8, 8)},
      {"llama2-7b.yaml", llama_shape(32, 4096, 11008, 32, 32)},
      {"llama2-13b.yaml", llama_shape(40, 5120, 13824, 40, 40)},
      {"llama2-70b.yaml", llama_shape(80, 8192, 28672, 64, 8)},
  };
  for (const auto& [name, model] : cases) {
    SCOPED_TRACE(name);
    const RunConfig c = load_run_config(kConfigs / name, {});
    EXPECT_EQ(c.stages, (std::vector<std::string>{"baseline", "sensitivity", "sample", "train", "search"}));
    const SensitivitySettings sens = read_sensitivity_settings(c, model);
    EXPECT_EQ(sens.layers.size(), static_cast<size_t>(model.num_layers));
    EXPECT_EQ(sweep_entries(sens, model).size(),
              static_cast<size_t>(model.num_layers) * (7 * sens.steps.size() + 7 + 1));
    const SearchSettings s = read_search_settings(c, model);
    EXPECT_GE(s.sample_count, 16);
    // The uniform reference and a few samples fit the budget.
    const PlanSampler sampler(s.space, model, s.budget);
    EXPECT_TRUE(sampler.fits(sampler.uniform()));
    std::mt19937_64 rng(1);
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(sampler.fits(sampler.sample(rng)));
  }
}

// Issue 17's demonstration (configs/search-heldout-tiny-trained.yaml): the stages through heldout, 45 real
// evaluations at 50%, a disjoint held-out set of 64 PTB prompts measured like the selection's.
TEST(SearchConfigs, HeldoutDemonstrationConfigValidates) {
  const ModelConfig model = llama_shape(6, 256, 688, 8, 8);
  const RunConfig c = load_run_config(kConfigs / "search-heldout-tiny-trained.yaml", {});
  EXPECT_EQ(c.stages, (std::vector<std::string>{"baseline", "sensitivity", "sample", "baselines", "train", "search",
                                                "heldout"}));
  EXPECT_EQ(sweep_entries(read_sensitivity_settings(c, model), model).size(), 42u);
  const SearchSettings s = read_search_settings(c, model);
  EXPECT_EQ(s.budget.sparsity, 0.5);
  EXPECT_EQ(s.sample_count + s.rounds * s.evaluate_per_round, 45);
  const PlanSampler sampler(s.space, model, s.budget);
  EXPECT_TRUE(sampler.fits(sampler.uniform()));
  const HeldoutSettings h = read_heldout_settings(c);
  EXPECT_EQ(h.candidates, 5);
  EXPECT_EQ(h.data.prompt_count, 64);
  EXPECT_EQ(h.data.prompt_tokens, c.prompt_tokens);
  EXPECT_EQ(h.data.ppl_text.filename(), "ptb.test.txt");
  EXPECT_EQ(h.data.prompts_text.filename(), "ptb.valid.txt");
  EXPECT_EQ(c.prompts_text.filename(), "wikitext2.valid.txt");
}

TEST(SearchConfigs, ObjectiveNamesAndSigns) {
  // The archive summary each objective reads (its dataset name comes from the summary table) and its sign.
  EXPECT_STREQ(summary_metric_name(parse_search_objective("mean_fdt").metric), "fdt_mean");
  EXPECT_STREQ(summary_metric_name(parse_search_objective("mean_kl").metric), "kl_mean");
  EXPECT_STREQ(summary_metric_name(parse_search_objective("perplexity").metric), "perplexity");
  EXPECT_EQ(parse_search_objective("mean_fdt").sign(), -1.0);
  EXPECT_EQ(parse_search_objective("mean_kl").sign(), 1.0);
  EXPECT_EQ(parse_search_objective("perplexity").sign(), 1.0);
  EXPECT_THROW(parse_search_objective("accuracy"), InputError);
  EXPECT_THROW(parse_search_objective("fdt_mean"), InputError);  // a summary name is not an objective name
}

}  // namespace
}  // namespace divprune

namespace divprune {
namespace {

// `divprune run configs/demo.yaml` from the source root: ${assets} relative to a relative config path resolves
// to the same files as with an absolute config path (it used to be resolved against the config directory twice).
// space.quant (issue 16): the choices parse, and bad ones are one InputError line naming the key.
TEST(SearchConfigs, QuantizationChoices) {
  const ModelConfig model = llama_shape(6, 256, 688, 8, 8);
  const std::string calibration =
      "calibration={text: " + (::divprune::test::assets_dir() / "wikitext2.valid.txt").string() +
      ", sequences: 4, length: 32}";
  auto settings = [&](const std::string& quant, bool calibrated = true) {
    std::vector<std::string> overrides = {"space.int8=false", "space.quant=" + quant};
    if (calibrated) overrides.push_back(calibration);
    return read_search_settings(load_run_config(kConfigs / "demo.yaml", overrides), model);
  };
  const SearchSettings s = settings("[none, int8, rtn-4, gptq-3, {method: gptq, bits: 4, group_size: 16, act_order: true}]");
  ASSERT_EQ(s.space.quant.size(), 5u);
  EXPECT_EQ(s.space.quant[1].method, QuantMethod::Int8);
  EXPECT_EQ(s.space.quant[2].method, QuantMethod::Rtn);
  EXPECT_EQ(s.space.quant[2].params.bits, 4);
  EXPECT_EQ(s.space.quant[2].params.group_size, 128);
  EXPECT_EQ(s.space.quant[3].method, QuantMethod::Gptq);
  EXPECT_EQ(s.space.quant[3].params.bits, 3);
  EXPECT_EQ(s.space.quant[4].params.group_size, 16);
  EXPECT_TRUE(s.space.quant[4].params.act_order);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"[none, gptq-5]", "bits 5 is not one of 2, 3, 4, 8"},
      {"[{method: rtn, bits: 5}]", "bits 5 is not one of 2, 3, 4, 8"},
      {"[gptq-x]", "expected none, int8, gptq-B or rtn-B"},
      {"[fp4]", "fp4"},
      {"[{method: gptq, group_size: 100}]", "group_size 100 divides the input columns of none"},
      {"[{method: int8, bits: 4}]", "apply to gptq and rtn only"},
      {"[{method: rtn, act_order: true}]", "act_order"},
      {"[]", "non-empty list"},
  };
  for (const auto& [quant, message] : bad) {
    SCOPED_TRACE(quant);
    try {
      settings(quant);
      ADD_FAILURE() << "expected an InputError";
    } catch (const InputError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("space.quant"), std::string::npos) << m;
      EXPECT_NE(m.find(message), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
  }
  // gptq without a calibration section; int8 and a list together.
  try {
    settings("[none, gptq-4]", false);
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("needs the run's `calibration:` section"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_search_settings(load_run_config(kConfigs / "demo.yaml", {"space.int8=true", "space.quant=[none, int8]"}),
                                    model),
               InputError);
}

TEST(SearchConfigs, RelativeConfigPathResolvesAssets) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(DIVPRUNE_SOURCE_DIR);
  const RunConfig rel = load_run_config("configs/demo.yaml", {});
  std::filesystem::current_path(cwd);
  const RunConfig abs = load_run_config(kConfigs / "demo.yaml", {});
  EXPECT_EQ(std::filesystem::weakly_canonical(std::filesystem::absolute(std::filesystem::path(DIVPRUNE_SOURCE_DIR) / rel.model)),
            std::filesystem::weakly_canonical(abs.model));
  EXPECT_EQ(rel.model.filename(), "tiny-llama2-trained");
}

}  // namespace
}  // namespace divprune

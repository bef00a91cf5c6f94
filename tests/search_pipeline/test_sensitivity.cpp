// The sensitivity stage on tiny-llama2-trained with a small sweep (layers 1 and
// 4, components q and down, steps 0.3 and 0.7, int8, removal: 14 plans): each
// cell of /sensitivity is the plan that compresses exactly that one thing (its
// id equals the hash of the same plan written by hand), the tables equal the
// plans' summaries, the ranking follows its definition, a rerun evaluates
// nothing, and bad sections are refused naming the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "compress/plan.hpp"
#include "core/sha256.hpp"
#include "model/config.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

const std::string kSweep = "sensitivity:\n"
                           "  steps: [0.3, 0.7]\n"
                           "  layers: [1, 4]\n"
                           "  components: [q, down]\n"
                           "  int8: true\n"
                           "  remove_layers: true\n"
                           "  fdt_threshold: 0.5\n";

// The archive id of a plan written as YAML (what evaluate would call it).
std::string id_of(const std::string &yaml, const ModelConfig &model) {
  const CompressionPlan plan = parse_plan(yaml, model, "test").plan();
  return plan_id_from_hash(sha256_hex(plan_to_yaml(canonical_plan(plan))));
}

double summary(H5File &f, const std::string &id, const std::string &name) {
  const std::string path = "plans/" + id + "/summary/" + name;
  return f.exists(path) ? f.read_double(path)[0] : std::nan("");
}

TEST(SensitivityStage, SweepTablesRankingAndResume) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "sens.h5";
  const auto cfg =
      write_config(dir, "sens.yaml", search_config(archive, kSweep, 32, 1));
  const auto r = run_config(cfg, "--set stages=[baseline,sensitivity]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_in(r.err, "archived plan"), 14u) << r.err;
  EXPECT_NE(r.out.find("sensitivity: components by how early they diverge"),
            std::string::npos)
      << r.out;

  const ModelConfig model =
      parse_hf_config(assets_dir() / "tiny-llama2-trained" / "config.json");
  std::vector<double> fdt;
  { // closed before the rerun opens the archive for writing
    H5File f(archive, H5Mode::Read);
    ASSERT_TRUE(f.exists("sensitivity") &&
                f.has_attr("sensitivity", "complete"));
    EXPECT_EQ(f.read_double("sensitivity/steps"),
              (std::vector<double>{0.3, 0.7}));
    EXPECT_EQ(f.read_int64("sensitivity/layers"), (std::vector<int64_t>{1, 4}));
    EXPECT_EQ(f.read_strings("sensitivity/components"),
              (std::vector<std::string>{"q", "down"}));
    const int64_t n = f.attr_int("sensitivity", "continuation");
    EXPECT_EQ(n, 8); // data.prompts.continuation of the test configuration

    // Cells in row-major (layer, component, step) order, each the plan of that
    // single component.
    const std::vector<std::string> ids = f.read_strings("sensitivity/plan_ids");
    ASSERT_EQ(ids.size(), 8u);
    size_t cell = 0;
    for (int layer : {1, 4})
      for (const char *comp : {"q", "down"})
        for (const char *step : {"0.3", "0.7"}) {
          const std::string yaml =
              std::string("components:\n  - {layers: [") +
              std::to_string(layer) + "], names: [" + comp +
              "], prune: {method: magnitude, sparsity: " + step + "}}\n";
          EXPECT_EQ(ids[cell], id_of(yaml, model))
              << "cell " << cell << ": L" << layer << "." << comp << " @ "
              << step;
          ++cell;
        }
    const std::vector<std::string> int8_ids =
        f.read_strings("sensitivity/int8/plan_ids");
    ASSERT_EQ(int8_ids.size(), 4u);
    EXPECT_EQ(
        int8_ids[3],
        id_of("components:\n  - {layers: [4], names: [down], quant: int8}\n",
              model));
    const std::vector<std::string> removed_ids =
        f.read_strings("sensitivity/removed/plan_ids");
    ASSERT_EQ(removed_ids.size(), 2u);
    CompressionPlan drop1 = CompressionPlan::identity(model.num_layers);
    drop1.layers[1].removed = true;
    EXPECT_EQ(removed_ids[0], plan_id_from_hash(sha256_hex(
                                  plan_to_yaml(canonical_plan(drop1)))));

    // Tables = the plans' summaries.
    Shape dims;
    fdt = f.read_double("sensitivity/fdt", &dims);
    EXPECT_EQ(dims, (Shape{2, 2, 2}));
    const std::vector<double> kl = f.read_double("sensitivity/kl");
    const std::vector<double> sdt = f.read_double("sensitivity/sdt");
    for (size_t i = 0; i < ids.size(); ++i) {
      EXPECT_EQ(fdt[i], summary(f, ids[i], "fdt_mean")) << i;
      EXPECT_EQ(sdt[i], summary(f, ids[i], "sdt_mean")) << i;
      EXPECT_EQ(kl[i], summary(f, ids[i], "kl_mean")) << i;
      EXPECT_GE(fdt[i], 0.0);
      EXPECT_LE(fdt[i], static_cast<double>(n));
      EXPECT_GT(kl[i], 0.0)
          << "a pruned component changes the output distribution";
    }
    const std::vector<double> removed_fdt =
        f.read_double("sensitivity/removed/fdt");
    EXPECT_EQ(removed_fdt[1], summary(f, removed_ids[1], "fdt_mean"));
    const std::vector<double> int8_kl =
        f.read_double("sensitivity/int8/kl", &dims);
    EXPECT_EQ(dims, (Shape{2, 2}));
    EXPECT_EQ(int8_kl[2], summary(f, int8_ids[2], "kl_mean"));
    // 70% of a component moves the outputs more than 30% of it (KL is
    // continuous, unlike FDT).
    for (size_t c = 0; c < 4; ++c)
      EXPECT_GT(kl[2 * c + 1], kl[2 * c]) << "cell pair " << c;

    // Ranking: every (layer, component) once; earlier divergence first, then
    // lower mean FDT.
    const auto rank_layer = f.read_int64("sensitivity/ranking/layer");
    const auto rank_comp = f.read_strings("sensitivity/ranking/component");
    const auto first = f.read_int64("sensitivity/ranking/first_divergent_step");
    const auto rank_fdt = f.read_double("sensitivity/ranking/fdt_mean");
    ASSERT_EQ(rank_layer.size(), 4u);
    std::set<std::string> seen;
    for (size_t i = 0; i < 4; ++i) {
      seen.insert(std::to_string(rank_layer[i]) + rank_comp[i]);
      const size_t li = rank_layer[i] == 1 ? 0 : 1,
                   ci = rank_comp[i] == "q" ? 0 : 1;
      const double a = fdt[(li * 2 + ci) * 2], b = fdt[(li * 2 + ci) * 2 + 1];
      const int64_t expected_first = a < 0.5 * n ? 0 : (b < 0.5 * n ? 1 : 2);
      EXPECT_EQ(first[i], expected_first) << rank_layer[i] << rank_comp[i];
      EXPECT_DOUBLE_EQ(rank_fdt[i], (a + b) / 2);
      if (i > 0) {
        EXPECT_LE(first[i - 1], first[i]);
        if (first[i - 1] == first[i]) {
          EXPECT_LE(rank_fdt[i - 1], rank_fdt[i]);
        }
      }
    }
    EXPECT_EQ(seen.size(), 4u);
  }

  // Rerun: everything complete, nothing evaluated, same tables.
  const auto again = run_config(cfg, "--set stages=[sensitivity]");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(count_in(again.err, "archived plan"), 0u);
  EXPECT_NE(again.err.find("14 already complete, 0 to evaluate"),
            std::string::npos)
      << again.err;
  H5File g(archive, H5Mode::Read);
  EXPECT_EQ(g.read_double("sensitivity/fdt"), fdt);
  fs::remove_all(dir);
}

TEST(SensitivityStage, BadSectionsAreRefusedNamingTheKey) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const auto cfg = write_config(dir, "bad.yaml",
                                search_config(dir / "bad.h5", kSweep, 32, 1));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set sensitivity.steps=[0.7,0.3]", "sensitivity.steps"},
      {"--set sensitivity.steps=[1.2]", "outside (0, 1)"},
      {"--set sensitivity.method=heads", "sensitivity.method"},
      {"--set sensitivity.layers=[9]", "layer 9 is outside [0, 6)"},
      {"--set sensitivity.components=[qq]", "unknown component \"qq\""},
      {"--set sensitivity.speed=1", "unknown key \"speed\""},
      {"--set data.prompts.count=0", "needs data.prompts"},
  };
  for (const auto &[set, message] : cases) {
    const auto r = run_config(cfg, "--set stages=[sensitivity] " + set);
    EXPECT_EQ(r.exit_code, 2) << set << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << set << "\n" << r.err;
    EXPECT_EQ(count_in(r.err, "divprune: error:"), 1u) << set << "\n" << r.err;
  }
  fs::remove_all(dir);
}

} // namespace
} // namespace divprune::test

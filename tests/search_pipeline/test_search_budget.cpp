// A bytes budget end to end on tiny-llama2-trained (space.budget.kind: bytes): baseline -> sample -> search, every
// sampled, uniform and searched plan inside the budget by compress/storage.hpp computed from its archived YAML,
// int8 used, /search/sample records the kind, the summary names it, read_archive.py --check passes; and bad
// budget keys exit 2 with one line naming the key.
#include <gtest/gtest.h>

#include <cmath>

#include "archive/search_archive.hpp"
#include "compress/storage.hpp"
#include "model/config.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

const std::string kSparsityBudget = "  budget: {sparsity: 0.4, tolerance: 0.04}\n";

std::string with_budget(std::string sections, const std::string& budget) {
  const size_t at = sections.find(kSparsityBudget);
  EXPECT_NE(at, std::string::npos);
  return sections.replace(at, kSparsityBudget.size(), budget);
}

TEST(SearchBudget, BytesBudgetRun) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const std::string sections =
      with_budget(search_sections(4, 1, 2, "mean_kl"), "  budget: {kind: bytes, fraction: 0.4, tolerance: 0.02}\n");
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, sections));
  const auto r = run_config(cfg, "--set stages=[baseline,sample,search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("search summary: mean_kl at stored bytes 0.400 ± 0.020 of dense fp16"), std::string::npos) << r.out;

  const ModelConfig model = parse_hf_config(assets_dir() / "tiny-llama2-trained" / "config.json");
  const RunArchive run(archive);
  const std::optional<SampleRecord> sample = read_search_sample(run);
  ASSERT_TRUE(sample);
  EXPECT_EQ(sample->budget_kind, "bytes");
  EXPECT_EQ(sample->budget_fraction, 0.4);
  EXPECT_TRUE(std::isnan(sample->budget_sparsity));
  std::vector<std::string> ids = sample->ids;
  ids.push_back(sample->uniform_id);
  const std::optional<RoundRecord> round = read_search_round(run, 0);
  ASSERT_TRUE(round);
  EXPECT_EQ(round->ids.size(), 2u);
  ids.insert(ids.end(), round->ids.begin(), round->ids.end());
  int with_int8 = 0;
  double min_sparsity = 1.0, max_sparsity = 0.0;
  for (const std::string& id : ids) {
    const CompressionPlan plan = parse_plan(run.read_plan_yaml(id), model, id).plan();
    const double bytes = plan_storage_bytes(plan, model).fraction();
    EXPECT_NEAR(bytes, 0.4, 0.02 + 1e-9) << id;
    const double sparsity = plan_size(plan, model).sparsity;
    min_sparsity = std::min(min_sparsity, sparsity);
    max_sparsity = std::max(max_sparsity, sparsity);
    bool int8 = false;
    for (const LayerPlan& l : plan.layers)
      for (const ComponentPlan& c : l.components) int8 = int8 || c.quant == QuantMethod::Int8;
    with_int8 += int8 ? 1 : 0;
  }
  std::printf("[ measured ] %zu plans at stored bytes 0.4 ± 0.02: %d with int8, linear sparsity %.3f .. %.3f\n",
              ids.size(), with_int8, min_sparsity, max_sparsity);
  EXPECT_GT(with_int8, 0);
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() + " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  EXPECT_NE(py.out.find("budget stored bytes 0.400 ± 0.020 of the dense model"), std::string::npos) << py.out;
  fs::remove_all(dir);
}

TEST(SearchBudget, BadBudgetKeysExit2NamingTheKey) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const auto cfg = write_config(dir, "run.yaml", search_config(dir / "run.h5", search_sections(4, 1, 2)));
  const std::string check = "--check-config --set stages=[baseline,sample] ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set space.budget.kind=flops", "space.budget.kind"},
      {"--set 'space.budget={kind: bytes}'", "space.budget (line 1): missing key \"fraction\""},
      {"--set 'space.budget={kind: bytes, fraction: 1.5}'", "space.budget.fraction"},
      {"--set 'space.budget={kind: parameters, fraction: 0}'", "space.budget.fraction"},
      {"--set 'space.budget={kind: bytes, fraction: 0.3, sparsity: 0.5}'", "space.budget.sparsity"},
      {"--set space.budget.fraction=0.3", "space.budget.fraction"},
      {"--set space.budget.tolerance=-1", "space.budget.tolerance"},
  };
  for (const auto& [set, key] : cases) {
    const auto bad = run_config(cfg, check + set);
    EXPECT_EQ(bad.exit_code, 2) << set << "\n" << bad.err;
    EXPECT_NE(bad.err.find(key), std::string::npos) << set << "\n" << bad.err;
    EXPECT_EQ(count_in(bad.err, "divprune: error:"), 1u) << set << "\n" << bad.err;
  }
  // The valid forms pass.
  for (const std::string set : {"--set 'space.budget={kind: bytes, fraction: 0.4, tolerance: 0.02}'",
                                "--set 'space.budget={kind: parameters, fraction: 0.9}'",
                                "--set 'space.budget={kind: sparsity, sparsity: 0.4}'"}) {
    const auto ok = run_config(cfg, check + set);
    EXPECT_EQ(ok.exit_code, 0) << set << "\n" << ok.err;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

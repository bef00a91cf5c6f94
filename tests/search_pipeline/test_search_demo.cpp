// configs/demo.yaml as shipped (archive redirected): baseline -> sensitivity -> sample -> train -> search runs
// to the end, prints the sensitivity ranking and the search summary, ranks all 6 x 7 components, and the searched
// plan beats the uniform reference. The wall time is printed, not asserted (speed is measured by
// scripts/run-demo.sh on an idle machine: under 5 minutes on 2 cores is the target).
#include <gtest/gtest.h>

#include <chrono>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipelineDemo, DemoConfigRunsEveryStage) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_divprune(" run " + kSource + "/configs/demo.yaml --threads 2 --set archive=" + (dir / "demo.h5").string() +
                              " --set assets=" + assets_dir().string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s\ndemo: %.1f s\n", r.out.c_str(), seconds);
  EXPECT_NE(r.out.find("search summary"), std::string::npos);
  EXPECT_NE(r.out.find("sensitivity: components by how early they diverge"), std::string::npos);
  for (const char* stage : {"baseline", "sensitivity", "sample", "train", "search"})
    EXPECT_NE(r.err.find(std::string("stage ") + stage + " finished"), std::string::npos) << stage;
  H5File f(dir / "demo.h5", H5Mode::Read);
  EXPECT_EQ(f.read_strings("sensitivity/ranking/component").size(), 42u);
  EXPECT_EQ(f.read_strings("sensitivity/plan_ids").size(), 84u);
  EXPECT_EQ(f.read_strings("sensitivity/int8/plan_ids").size(), 42u);
  EXPECT_EQ(f.read_strings("sensitivity/removed/plan_ids").size(), 6u);
  // Removing the first layer wrecks the continuations more than removing a middle one.
  const std::vector<double> removed = f.read_double("sensitivity/removed/fdt");
  EXPECT_LT(removed[0], removed[3]);
  const std::string uniform = f.attr_string("search/sample", "uniform_id");
  EXPECT_GT(f.attr_double("search/best", "objective"), f.read_double("plans/" + uniform + "/summary/fdt_mean")[0]);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

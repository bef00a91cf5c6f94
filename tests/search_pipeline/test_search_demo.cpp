// configs/demo.yaml as shipped (archive redirected): baseline -> sample -> train -> search finishes in well
// under 5 minutes on 2 cores, prints the summary table, and the searched plan beats the uniform reference.
#include <gtest/gtest.h>

#include <chrono>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipelineDemo, DemoConfigRunsInUnderFiveMinutes) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_divprune(" run " + kSource + "/configs/demo.yaml --threads 2 --set archive=" + (dir / "demo.h5").string() +
                              " --set assets=" + assets_dir().string());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s\ndemo: %.1f s\n", r.out.c_str(), seconds);
  EXPECT_LT(seconds, 300.0);
  EXPECT_NE(r.out.find("search summary"), std::string::npos);
  H5File f(dir / "demo.h5", H5Mode::Read);
  const std::string uniform = f.attr_string("search/sample", "uniform_id");
  EXPECT_GT(f.attr_double("search/best", "objective"), f.read_double("plans/" + uniform + "/summary/fdt_mean")[0]);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// baseline -> sample -> train -> search on tiny-llama2-trained: every sampled and searched plan inside the
// budget, the archive holds the pairs, the predictor and its scores, every round's predicted vs measured,
// the Pareto front and the best plan; a rerun does no new evaluation; bad search settings are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

TEST(SearchPipeline, SampleTrainSearchFillTheArchiveInsideTheBudget) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, search_sections()));
  const auto r = run_config(cfg, "--set stages=[baseline,sample,train,search]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s\n", r.out.c_str());
  EXPECT_NE(r.out.find("search summary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best searched"), std::string::npos) << r.out;

  {  // the archive is closed before the rerun (HDF5 file locking)
  H5File f(archive, H5Mode::Read);
  const auto in_budget = [&](const std::string& id) {
    const double s = f.attr_double("plans/" + id, "sparsity");
    EXPECT_LE(std::fabs(s - kBudget), kTolerance + 1e-9) << id << " sparsity " << s;
  };
  // Sample: 12 random plans (duplicates evaluated once) + the uniform reference, all pairs with features.
  ASSERT_TRUE(f.exists("search/sample/ids"));
  const auto sample_ids = f.read_strings("search/sample/ids");
  EXPECT_EQ(sample_ids.size(), 12u);
  const std::string uniform = f.attr_string("search/sample", "uniform_id");
  const std::string best_random = f.attr_string("search/sample", "best_random_id");
  EXPECT_TRUE(std::find(sample_ids.begin(), sample_ids.end(), best_random) != sample_ids.end());
  const size_t features = f.read_strings("plans/feature_names").size();
  std::set<std::string> all(sample_ids.begin(), sample_ids.end());
  all.insert(uniform);
  for (const std::string& id : all) {
    in_budget(id);
    EXPECT_EQ(f.attr_int("plans/" + id, "complete"), 1);
    EXPECT_EQ(f.read_float("plans/" + id + "/features").size(), features);
    EXPECT_TRUE(f.exists("plans/" + id + "/summary/kl_mean"));
  }
  const double best_random_kl = f.read_double("plans/" + best_random + "/summary/kl_mean")[0];
  for (const std::string& id : sample_ids) EXPECT_LE(best_random_kl, f.read_double("plans/" + id + "/summary/kl_mean")[0]);

  // Predictor: scores, model, importances, held-out predictions of every pair of the final fit.
  const std::string p = "search/predictor";
  EXPECT_EQ(f.attr_string(p, "objective"), "mean_kl");
  const double r2 = f.read_double(p + "/r2")[0], rho = f.read_double(p + "/spearman")[0], mae = f.read_double(p + "/mae")[0];
  std::printf("predictor: %lld pairs, R2 %.3f, Spearman %.3f, MAE %.4g\n",
              static_cast<long long>(f.attr_int(p, "pairs")), r2, rho, mae);
  EXPECT_TRUE(std::isfinite(r2) && std::isfinite(rho) && mae >= 0);
  EXPECT_EQ(f.attr_int(p, "pairs"), static_cast<int64_t>(all.size() + 6));
  EXPECT_NE(f.read_strings(p + "/model_json")[0].find("learner"), std::string::npos);
  // The plan features, then 6 per-layer sparsities, 7 per-component means, int8 share, removed layers.
  EXPECT_EQ(f.read_double(p + "/feature_gain").size(), features + 6 + 7 + 2);
  EXPECT_EQ(f.read_strings(p + "/feature_names").size(), features + 6 + 7 + 2);
  EXPECT_EQ(f.read_strings(p + "/feature_names").back(), "removed_layers");
  EXPECT_EQ(f.read_double(p + "/held_out_prediction").size(), static_cast<size_t>(f.attr_int(p, "pairs")));

  // Rounds: 3 new plans each, inside the budget, predicted vs measured stored.
  std::set<std::string> searched;
  for (int round = 0; round < 2; ++round) {
    const std::string g = "search/rounds/" + std::to_string(round);
    ASSERT_TRUE(f.exists(g)) << g;
    EXPECT_EQ(f.attr_int(g, "complete"), 1);
    const auto ids = f.read_strings(g + "/ids");
    EXPECT_EQ(ids.size(), 3u);
    EXPECT_EQ(f.read_double(g + "/predicted").size(), ids.size());
    const auto measured = f.read_double(g + "/measured");
    ASSERT_EQ(measured.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      in_budget(ids[i]);
      EXPECT_EQ(all.count(ids[i]), 0u) << "round " << round << " re-evaluated " << ids[i];
      EXPECT_DOUBLE_EQ(measured[i], f.read_double("plans/" + ids[i] + "/summary/kl_mean")[0]);
      searched.insert(ids[i]);
      all.insert(ids[i]);
    }
  }
  EXPECT_EQ(searched.size(), 6u);
  // Best searched plan and Pareto front.
  const std::string best = f.attr_string("search/best", "id");
  EXPECT_EQ(searched.count(best), 1u);
  for (const std::string& id : searched)
    EXPECT_LE(f.attr_double("search/best", "objective"), f.read_double("plans/" + id + "/summary/kl_mean")[0]);
  const auto front = f.read_strings("search/pareto/ids");
  const auto front_s = f.read_double("search/pareto/sparsity"), front_kl = f.read_double("search/pareto/objective");
  ASSERT_FALSE(front.empty());
  for (size_t i = 1; i < front.size(); ++i) {
    EXPECT_GE(front_s[i], front_s[i - 1]);
    EXPECT_GE(front_kl[i], front_kl[i - 1]);  // more sparsity costs KL along the front
  }
  std::printf("uniform KL %.4g, best random KL %.4g, best searched KL %.4g\n",
              f.read_double("plans/" + uniform + "/summary/kl_mean")[0], best_random_kl,
              f.attr_double("search/best", "objective"));

  }
  // The archive passes the reader's schema check (every dataset annotated).
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() + " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  // A rerun evaluates nothing new.
  const auto again = run_config(cfg, "--set stages=[sample,train,search]");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("archived plan"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("round 1 is complete in the archive"), std::string::npos) << again.err;
  fs::remove_all(dir);
}

TEST(SearchPipeline, BadSettingsAreRefused) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, search_sections(4, 1, 1, "accuracy")));
  auto r = run_config(cfg, "--set stages=[sample]");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("train.objective"), std::string::npos) << r.err;
  r = run_config(cfg, "--set stages=[sample] --set train.objective=mean_kl --set space.bogus=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown key \"bogus\""), std::string::npos) << r.err;
  r = run_config(cfg, "--set stages=[search] --set train.objective=mean_kl");
  EXPECT_NE(r.exit_code, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

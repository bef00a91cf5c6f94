// `divprune run` under four topologies (tp 1, 2 replicas x tp 2, and a fresh baseline at tp 2) gives the same
// baseline outputs and the same plan results (to float tolerance; argmax, FDT, SDT and choices exactly).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>
#include <tuple>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

// Arrays of one plan, for comparisons across topologies.
struct PlanArrays {
  std::vector<double> nll, kl, sdt, mc;
  std::vector<int32_t> argmax, fdt, tf, pred;
  int64_t replica = 0;
};
std::map<std::string, PlanArrays> read_plans(const fs::path& archive) {
  std::map<std::string, PlanArrays> out;
  H5File f(archive, H5Mode::Read);
  for (const auto& [name, id] : plan_ids(archive)) {
    const std::string g = "plans/" + id;
    EXPECT_EQ(f.attr_int(g, "complete"), 1) << archive << " " << name;
    PlanArrays p;
    p.nll = f.read_double(g + "/tokens/nll");
    p.kl = f.read_double(g + "/tokens/kl");
    p.sdt = f.read_double(g + "/prompts/sdt");
    p.mc = f.read_double(g + "/mc/logprob_sum");
    p.argmax = f.read_int32(g + "/tokens/argmax");
    p.fdt = f.read_int32(g + "/prompts/fdt");
    p.tf = f.read_int32(g + "/prompts/tf_argmax");
    p.pred = f.read_int32(g + "/mc/pred_sum");
    p.replica = f.attr_int(g, "replica");
    out[name] = p;
  }
  return out;
}

void expect_same(const std::map<std::string, PlanArrays>& a, const std::map<std::string, PlanArrays>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, x] : a) {
    const PlanArrays& y = b.at(name);
    ASSERT_EQ(x.nll.size(), y.nll.size());
    for (size_t i = 0; i < x.nll.size(); ++i) EXPECT_NEAR(x.nll[i], y.nll[i], 2e-5) << what << " " << name << " nll " << i;
    ASSERT_EQ(x.kl.size(), y.kl.size());
    for (size_t i = 0; i < x.kl.size(); ++i)
      EXPECT_NEAR(x.kl[i], y.kl[i], 2e-6 + 1e-4 * std::abs(x.kl[i])) << what << " " << name << " kl " << i;
    for (size_t i = 0; i < x.mc.size(); ++i) EXPECT_NEAR(x.mc[i], y.mc[i], 1e-4) << what << " " << name << " mc " << i;
    EXPECT_EQ(x.argmax, y.argmax) << what << " " << name;
    EXPECT_EQ(x.fdt, y.fdt) << what << " " << name;
    EXPECT_EQ(x.sdt, y.sdt) << what << " " << name;
    EXPECT_EQ(x.tf, y.tf) << what << " " << name;
    EXPECT_EQ(x.pred, y.pred) << what << " " << name;
  }
}

TEST(RunTp, Tp1Tp2AndReplicasGiveTheSameResults) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const std::string plans = "    - base\n    - " + kSource + "/configs/plans/magnitude50_all.yaml\n    - " + kSource +
                            "/configs/plans/drop_layer4.yaml\n";
  // One baseline at tp 1, evaluated at tp 1 and at 2 replicas x tp 2.
  const auto cfg = write_config(dir, "baseline.yaml", config(dir / "baseline.h5", plans));
  auto r = run_config(cfg, "--set stages=[baseline]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::map<std::string, std::map<std::string, PlanArrays>> results;
  for (const auto& [name, ranks, tp] : {std::tuple{"tp1", 0, 1}, std::tuple{"2 replicas x tp2", 4, 2}}) {
    const fs::path archive = dir / (std::string(name) + ".h5");
    fs::copy_file(dir / "baseline.h5", archive);
    r = run_config(cfg, "--set stages=[evaluate] --set archive=\"" + archive.string() + "\"", ranks, tp);
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    results[name] = read_plans(archive);
    H5File f(archive, H5Mode::Read);
    EXPECT_EQ(f.attr_int("/", "tp"), tp);
    EXPECT_EQ(f.attr_int("/", "world_size"), std::max(1, ranks));
    std::set<int64_t> replicas;
    for (const auto& [plan, p] : results[name]) replicas.insert(p.replica);
    for (int64_t rep : replicas) EXPECT_LT(rep, std::max(1, ranks) / tp);
    std::printf("%s: plans evaluated by %zu replica(s)\n", name, replicas.size());
  }
  expect_same(results["tp1"], results["2 replicas x tp2"], "tp1 vs 2 replicas x tp2");

  // Baseline and evaluation at tp 2 from scratch (one replica): the baseline matches the tp 1 one (fp16
  // log-probs up to last-bit rounding) and so do the plan results.
  const fs::path fresh = dir / "tp2.h5";
  r = run_config(cfg, "--set archive=\"" + fresh.string() + "\"", 2, 2);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunArchive a(dir / "baseline.h5"), b(fresh);
  const BaseOutputs x = a.read_base_outputs(), y = b.read_base_outputs();
  EXPECT_EQ(x.argmax, y.argmax);
  EXPECT_EQ(x.continuation, y.continuation);
  EXPECT_EQ(x.tf_argmax, y.tf_argmax);
  for (size_t i = 0; i < x.nll.size(); ++i) EXPECT_NEAR(x.nll[i], y.nll[i], 2e-5);
  for (size_t i = 0; i < x.mc_logprob.size(); ++i) EXPECT_NEAR(x.mc_logprob[i], y.mc_logprob[i], 1e-4);
  std::vector<uint16_t> bx, by;
  a.read_base_logprobs(0, 64, bx);
  b.read_base_logprobs(0, 64, by);
  size_t differing = 0;
  for (size_t i = 0; i < bx.size(); ++i) differing += bx[i] != by[i];
  EXPECT_LE(differing, bx.size() / 1000) << "fp16 log-probs differ beyond last-bit rounding";
  std::printf("tp2 baseline: %zu of %zu fp16 log-probs differ from tp1 (last-bit rounding)\n", differing, bx.size());
  expect_same(results["tp1"], read_plans(fresh), "tp1 vs tp2 (own baseline)");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// A `divprune run` killed with SIGKILL after its first plan was archived leaves a readable archive; a rerun
// evaluates only the plans that were not complete (checked by the log and the run_index attribute of each plan).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

TEST(RunResume, KilledRunLeavesAReadableArchiveAndResumes) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  std::string plans;
  for (double s : {0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7})
    plans += "    - {name: mag" + std::to_string(static_cast<int>(s * 100)) +
             ", plan: {components: [{layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, "
             "sparsity: " + std::to_string(s) + "}}]}}\n";
  const auto cfg = write_config(dir, "run.yaml", config(archive, plans, 64, 4, 128));
  ASSERT_EQ(run_config(cfg, "--set stages=[baseline]").exit_code, 0);

  // Evaluate in the background; SIGKILL once the first plan is archived.
  const fs::path log = dir / "first.log";
  const std::string cmd = divprune_binary() + " run " + cfg.string() + " --threads 1 2>" + log.string() + " >/dev/null";
  const KilledRun killed = run_until_log_then_kill(cmd, log, "archived plan");
  ASSERT_TRUE(killed.marker_seen) << "no plan was archived in time";
  ASSERT_TRUE(killed.killed) << "the run finished before it could be killed";

  // Readable, with some plans complete and some not.
  RunArchive a(archive);
  const auto status_before = a.plan_status();
  int complete = 0;
  for (const auto& [id, done] : status_before) complete += done;
  EXPECT_GE(complete, 1);
  EXPECT_LT(complete, 8);
  std::printf("killed with %d of 8 plans complete (%zu plan groups in the archive)\n", complete, status_before.size());
  std::set<std::string> done_before;
  for (const auto& [id, done] : status_before)
    if (done) done_before.insert(id);
  {
    H5File f(archive, H5Mode::Read);
    for (const std::string& id : done_before) EXPECT_EQ(f.attr_int("plans/" + id, "run_index"), 2);
  }
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() + " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;

  // The rerun skips the complete plans and evaluates the others.
  const auto r = run_config(cfg);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(std::to_string(complete) + " already complete, " + std::to_string(8 - complete) + " to evaluate"),
            std::string::npos)
      << r.err;
  size_t archived = 0;
  for (size_t at = r.err.find("archived plan"); at != std::string::npos; at = r.err.find("archived plan", at + 1)) ++archived;
  EXPECT_EQ(archived, static_cast<size_t>(8 - complete));
  H5File f(archive, H5Mode::Read);
  EXPECT_EQ(f.attr_int("/", "runs"), 3);
  const auto after = a.plan_status();
  ASSERT_EQ(after.size(), 8u);
  for (const auto& [id, done] : after) {
    EXPECT_TRUE(done) << id;
    EXPECT_EQ(f.attr_int("plans/" + id, "run_index"), done_before.count(id) ? 2 : 3) << id;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

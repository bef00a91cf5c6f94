// Issue 14 item 1, end to end: the archive's disk fills while `divprune run` archives plans. The run stops with
// exit 3 and one line "divprune: error: no space left on device: PATH ..." (under `ulimit -f`: "file size limit
// exceeded: PATH ..."), no summary table, no segfault; every plan it logged as archived is complete in the archive;
// once there is room the next run finishes, read_archive.py --check passes and every plan's metrics equal those
// of an uninterrupted run.
// Before: "archived plan" logged for plans never written, a table of zeros, exit 139 (HDF5's exit-time close of
// a file whose close had failed), and an archive HDF5 could no longer read ("wrong B-tree signature").
#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cmath>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::vector<std::string> error_lines(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("divprune: error:", 0) == 0) out.push_back(line);
  return out;
}

// Runs the baseline into `archive` and returns the plans' summaries of an uninterrupted evaluate run (on a copy).
struct Prepared {
  fs::path cfg;
  std::map<std::string, Summary> reference;  // by plan id
};
Prepared prepare(const fs::path& dir, const fs::path& archive) {
  Prepared p;
  p.cfg = write_config(dir, "run.yaml", config(archive, kPlans));
  const auto base = run_config(p.cfg, "--set stages=[baseline]");
  EXPECT_EQ(base.exit_code, 0) << base.err;
  const fs::path reference = dir / "reference.h5";
  fs::copy_file(archive, reference);
  const auto ref_cfg = write_config(dir, "reference.yaml", config(reference, kPlans));
  const auto r = run_config(ref_cfg);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  RunArchive a(reference);
  for (const auto& [id, done] : a.plan_status()) p.reference[id] = a.read_plan_summary(id);
  EXPECT_EQ(p.reference.size(), 4u);
  return p;
}

// The failed run's promises, then the resumed run's results.
void check_failed_then_resumed(const CommandResult& failed, const std::string& expected_error, const fs::path& archive,
                               const Prepared& p, const std::function<CommandResult()>& resume) {
  EXPECT_EQ(failed.exit_code, 3) << failed.err;
  const auto errors = error_lines(failed.err);
  ASSERT_EQ(errors.size(), 1u) << failed.err;
  EXPECT_EQ(errors[0].rfind("divprune: error: " + expected_error + ": " + archive.string(), 0), 0u) << errors[0];
  EXPECT_EQ(failed.out.find("ppl/base"), std::string::npos) << "a summary table after the failure:\n" << failed.out;
  // The archive is readable, and each plan logged as archived is complete in it.
  RunArchive a(archive);
  size_t complete = 0;
  for (const auto& [id, done] : a.plan_status()) complete += done;
  EXPECT_EQ(count_of(failed.err, "archived plan"), complete) << failed.err;
  EXPECT_LT(complete, 4u) << "the limit did not stop the run";
  std::printf("stopped with %zu of 4 plans archived: %s\n", complete, errors[0].c_str());

  const CommandResult r = resume();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(std::to_string(complete) + " already complete"), std::string::npos) << r.err;
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() + " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  const auto status = a.plan_status();
  ASSERT_EQ(status.size(), 4u);
  for (const auto& [id, done] : status) {
    EXPECT_TRUE(done) << id;
    ASSERT_EQ(p.reference.count(id), 1u) << id;
    const Summary s = a.read_plan_summary(id), ref = p.reference.at(id);
    ASSERT_EQ(s.metrics(), ref.metrics()) << id;
    for (SummaryMetric m : s.metrics()) {
      if (!(std::isnan(s[m]) && std::isnan(ref[m]))) {
        EXPECT_EQ(s[m], ref[m]) << id << " " << summary_metric_name(m);
      }
    }
  }
}

// The file-size limit of `ulimit -f` (SIGXFSZ ignored, so writes fail with EFBIG) stands in for a full disk
// anywhere; the limit leaves room for the baseline and one or two plans. (It applies to every file the process
// writes: much below ~3 MB, Open MPI's own shared-memory files fail MPI_Init first.)
TEST(RunFullDisk, FileSizeLimitStopsCleanlyAndTheRunResumes) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const Prepared p = prepare(dir, archive);
  const auto limit_kib = (fs::file_size(archive) + (1u << 20)) / 1024 + 100;
  // bash: its `ulimit -f` counts KiB (dash's, /bin/sh on Debian, counts 512-byte blocks).
  std::ofstream(dir / "limited.sh") << "ulimit -f " << limit_kib << "\ntrap '' XFSZ\nexec " << divprune_binary()
                                    << " run " << p.cfg.string() << " --threads 1\n";
  const auto failed = run_command("bash " + (dir / "limited.sh").string());
  check_failed_then_resumed(failed, "file size limit exceeded", archive, p, [&] { return run_config(p.cfg); });
  fs::remove_all(dir);
}

// A real full file system: a tmpfs just big enough for the baseline and one or two plans. Needs root (mount);
// skipped where mounting is not allowed.
TEST(RunFullDisk, FullTmpfsStopsCleanlyAndTheRunResumes) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path mnt = dir / "mnt";
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64m") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    fs::path path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  const fs::path archive = mnt / "run.h5";
  const Prepared p = prepare(dir, archive);
  const auto size_kib = (fs::file_size(archive) + (1u << 20)) / 1024 + 100;
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, ("size=" + std::to_string(size_kib) + "k").c_str()), 0);
  const auto failed = run_config(p.cfg);
  check_failed_then_resumed(failed, "no space left on device", archive, p, [&] {
    EXPECT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=64m"), 0);  // space freed
    return run_config(p.cfg);
  });
  ::umount2(mnt.c_str(), MNT_DETACH);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

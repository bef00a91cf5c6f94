// archive/archive_lock.hpp: a second holder is refused with a message naming the first; stale locks (a dead pid
// on this host, an earlier start of the same Slurm job) are taken over; the lock file goes when the lock does.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "archive/archive_lock.hpp"
#include "core/errors.hpp"

namespace divprune {
namespace {

std::filesystem::path temp_archive(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("divprune-lock-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto archive = dir / name;
  std::filesystem::remove(ArchiveLock::lock_path(archive));
  return archive;
}

void write_lock(const std::filesystem::path& archive, const std::string& text) {
  std::ofstream(ArchiveLock::lock_path(archive)) << text;
}

TEST(ArchiveLock, SecondHolderIsRefusedWithTheFirstNamed) {
  unsetenv("SLURM_JOB_ID");
  const auto archive = temp_archive("a.h5");
  {
    ArchiveLock lock(archive);
    ASSERT_TRUE(std::filesystem::exists(ArchiveLock::lock_path(archive)));
    // This process holds it and is alive: a holder with our pid is taken as stale only when the lock is not
    // ours, so check with a live foreign pid on this host instead (pid 1 always exists).
    write_lock(archive, "host=" + ArchiveLock::self().host + " pid=1 job=\n");
    try {
      ArchiveLock second(archive);
      FAIL() << "a second lock on a held archive was granted";
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("is in use by host " + ArchiveLock::self().host + " pid 1"), std::string::npos) << message;
      EXPECT_NE(message.find("a.h5.lock"), std::string::npos) << message;
    }
  }
  EXPECT_FALSE(std::filesystem::exists(ArchiveLock::lock_path(archive))) << "the lock file outlived its lock";
}

TEST(ArchiveLock, OtherHostIsNeverTakenOver) {
  unsetenv("SLURM_JOB_ID");
  const auto archive = temp_archive("b.h5");
  write_lock(archive, "host=some-other-node pid=999999 job=17\n");
  EXPECT_THROW(ArchiveLock lock(archive), InputError);
  std::filesystem::remove(ArchiveLock::lock_path(archive));
}

TEST(ArchiveLock, StaleLocksAreTakenOver) {
  const auto archive = temp_archive("c.h5");
  unsetenv("SLURM_JOB_ID");
  // A pid that does not exist on this host (above the kernel's pid_max of 4194304).
  write_lock(archive, "host=" + ArchiveLock::self().host + " pid=99999999 job=\n");
  { ArchiveLock lock(archive); }
  // An earlier start of this Slurm job, on another node.
  setenv("SLURM_JOB_ID", "4242", 1);
  write_lock(archive, "host=some-other-node pid=12 job=4242\n");
  {
    ArchiveLock lock(archive);
    std::ifstream in(ArchiveLock::lock_path(archive));
    std::string text((std::istreambuf_iterator<char>(in)), {});
    const ArchiveLockHolder holder = ArchiveLock::parse(text);
    EXPECT_EQ(holder.pid, static_cast<long>(::getpid()));
    EXPECT_EQ(holder.job, "4242");
    EXPECT_EQ(holder.host, ArchiveLock::self().host);
  }
  unsetenv("SLURM_JOB_ID");
}

}  // namespace
}  // namespace divprune

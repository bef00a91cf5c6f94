#pragma once
// An explicit lock on a run archive, so that a second job on the same archive (a job array, a second
// submission) fails at once with who holds it, instead of HDF5's "cannot open as an HDF5 file".
//
// The lock is a file beside the archive, `<archive>.lock`, created exclusively (O_EXCL) by the coordinator of
// `divprune run` and holding one line `host=H pid=P job=J`; it is removed when the run ends (also when it
// stops on a signal). A lock left behind by a process that died is taken over when it is provably stale:
// written on this host by a pid that no longer exists, or by an earlier start of this same Slurm job
// (SLURM_JOB_ID: a requeued job may restart on another node). Otherwise the lock names its holder and the
// file to delete if that holder is gone.
#include <filesystem>
#include <string>

namespace divprune {

struct ArchiveLockHolder {
  std::string host;
  long pid = 0;
  std::string job;  // SLURM_JOB_ID of the holder, "" outside Slurm
};

class ArchiveLock {
 public:
  // Throws InputError naming the holder when the archive is in use, IoError when the lock cannot be written.
  explicit ArchiveLock(const std::filesystem::path& archive);
  ~ArchiveLock();
  ArchiveLock(const ArchiveLock&) = delete;
  ArchiveLock& operator=(const ArchiveLock&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The lock file of an archive.
  static std::filesystem::path lock_path(const std::filesystem::path& archive);
  // This process as a holder (host name, pid, SLURM_JOB_ID).
  static ArchiveLockHolder self();
  // The holder recorded in a lock file's text.
  static ArchiveLockHolder parse(const std::string& text);

 private:
  std::filesystem::path path_;
};

}  // namespace divprune

#include "archive/archive_lock.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"

namespace divprune {

namespace {

std::string describe(const ArchiveLockHolder& h) {
  std::string s = fmt::format("host {} pid {}", h.host.empty() ? "?" : h.host, h.pid);
  if (!h.job.empty()) s += fmt::format(" (Slurm job {})", h.job);
  return s;
}

// Why a lock left by `holder` may be taken over by `me`, or "" when it may not.
std::string stale_reason(const ArchiveLockHolder& holder, const ArchiveLockHolder& me) {
  if (!holder.job.empty() && holder.job == me.job) return "left by an earlier start of this Slurm job";
  if (holder.host == me.host && holder.pid > 0) {
    if (holder.pid == static_cast<long>(::getpid())) return "left by an earlier process with this pid";
    if (::kill(static_cast<pid_t>(holder.pid), 0) != 0 && errno == ESRCH) return "its process is gone";
  }
  return "";
}

}  // namespace

std::filesystem::path ArchiveLock::lock_path(const std::filesystem::path& archive) {
  return std::filesystem::path(archive.string() + ".lock");
}

ArchiveLockHolder ArchiveLock::self() {
  ArchiveLockHolder h;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) h.host = host;
  h.pid = static_cast<long>(::getpid());
  if (const char* job = std::getenv("SLURM_JOB_ID")) h.job = job;
  return h;
}

ArchiveLockHolder ArchiveLock::parse(const std::string& text) {
  ArchiveLockHolder h;
  std::istringstream in(text);
  std::string field;
  while (in >> field) {
    const auto eq = field.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    if (key == "host") h.host = value;
    else if (key == "job") h.job = value;
    else if (key == "pid") h.pid = std::strtol(value.c_str(), nullptr, 10);
  }
  return h;
}

ArchiveLock::ArchiveLock(const std::filesystem::path& archive) : path_(lock_path(archive)) {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
  const ArchiveLockHolder me = self();
  const std::string line = fmt::format("host={} pid={} job={}\n", me.host, me.pid, me.job);
  // Two attempts: the second after removing a stale lock (another process may win the race in between).
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
      ::close(fd);
      if (!ok) throw IoError(fmt::format("{}: cannot write the archive lock", path_.string()));
      return;
    }
    if (errno != EEXIST)
      throw IoError(fmt::format("{}: cannot create the archive lock: {}", path_.string(), std::strerror(errno)));
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    const ArchiveLockHolder holder = parse(text.str());
    const std::string reason = stale_reason(holder, me);
    if (reason.empty() || attempt > 0)
      throw InputError(fmt::format("archive {} is in use by {} (lock file {}); if that process is gone, delete the "
                                   "lock file",
                                   archive.string(), describe(holder), path_.string()));
    spdlog::warn("archive {}: taking over the lock of {}: {}", archive.string(), describe(holder), reason);
    std::filesystem::remove(path_);
  }
}

ArchiveLock::~ArchiveLock() {
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

}  // namespace divprune

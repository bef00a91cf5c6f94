#include "core/input_file.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"

namespace divprune {

namespace {

std::string kind_of(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// strerror in the project's message style: "no such file or directory", not "No such file or directory".
std::string os_reason(int err) {
  std::string reason = std::strerror(err);
  if (!reason.empty() && reason[0] >= 'A' && reason[0] <= 'Z') reason[0] = static_cast<char>(reason[0] - 'A' + 'a');
  return reason;
}

}  // namespace

std::string file_kind(const std::filesystem::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return os_reason(errno);
  return kind_of(st.st_mode);
}

void require_regular_file(const std::filesystem::path& path, std::string_view what) {
  struct stat st {};
  // stat, not open: open(O_RDONLY) of a FIFO blocks until some process opens it for writing.
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    throw InputError(fmt::format("{}: cannot open {}: {}", path.string(), what, os_reason(err)));
  }
  if (!S_ISREG(st.st_mode))
    throw InputError(fmt::format("{}: cannot open {}: not a regular file ({})", path.string(), what, kind_of(st.st_mode)));
}

void require_output_file_path(const std::filesystem::path& path, std::string_view what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      throw InputError(fmt::format("{}: cannot write {}: not a regular file ({})", path.string(), what, kind_of(st.st_mode)));
    return;
  }
  const std::filesystem::path absolute = std::filesystem::absolute(path);
  for (std::filesystem::path parent = absolute.parent_path(); !parent.empty(); parent = parent.parent_path()) {
    if (::stat(parent.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        throw InputError(fmt::format("{}: cannot write {}: {} is not a directory ({})", path.string(), what,
                                     parent.string(), kind_of(st.st_mode)));
      return;
    }
    if (parent == parent.root_path()) return;
  }
}

std::string read_input_file(const std::filesystem::path& path, std::string_view what) {
  require_regular_file(path, what);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw InputError(fmt::format("{}: cannot open {}: {}", path.string(), what, os_reason(err)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(fmt::format("{}: cannot read {}", path.string(), what));
  return text.str();
}

bool same_file(const std::filesystem::path& a, const std::filesystem::path& b) {
  if (a.empty() || b.empty()) return false;
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) || a.lexically_normal() == b.lexically_normal();
}

}  // namespace divprune

#pragma once
// Shared by the archive tests: a fresh archive path per test process.
#include <unistd.h>

#include <filesystem>
#include <string>

namespace divprune::test {

// `name` in the folder divprune-<folder>-<pid> of the temporary directory (created), with nothing at it: a file
// that an earlier run of the same test left there is removed.
inline std::filesystem::path fresh_temp_archive(const std::string& folder, const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("divprune-" + folder + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::filesystem::remove(dir / name);
  return dir / name;
}

}  // namespace divprune::test

#pragma once
// Test helpers: where the shared assets are, and running the divprune binary.
#include <filesystem>
#include <string>

namespace divprune::test {

// DIVPRUNE_ASSETS or ../shared/assets beside the source tree. When the directory (or `file` inside it) is
// missing, the calling test fails if CI=true and is skipped otherwise: use ASSETS_OR_SKIP.
std::filesystem::path assets_dir();
// Returns true when present; otherwise records a failure (CI) or nothing and returns false.
bool assets_present(const std::string& file);

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the divprune binary with `args` (a shell-quoted string) and captures its output.
CommandResult run_divprune(const std::string& args);
// Runs any shell command line and captures its output.
CommandResult run_command(const std::string& command_line);
std::string divprune_binary();

struct KilledRun {
  bool marker_seen = false;  // the marker appeared in the log before the deadline
  bool killed = false;       // the process was still running and died of SIGKILL (it did not finish first)
};
// Starts `shell_command` (its stderr must go to `log`), waits until `marker` appears in `log`, then SIGKILLs it:
// how the resume tests interrupt a run right after it archived something.
KilledRun run_until_log_then_kill(const std::string& shell_command, const std::filesystem::path& log,
                                  const std::string& marker, int timeout_s = 300);

}  // namespace divprune::test

// Use at the top of a test that needs `file` (relative to the assets directory).
#define ASSETS_OR_SKIP(file)                                                              \
  do {                                                                                    \
    if (!::divprune::test::assets_present(file)) GTEST_SKIP() << "assets missing: " << (file); \
  } while (0)

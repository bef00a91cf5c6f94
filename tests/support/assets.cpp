#include "tests/support/assets.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace divprune::test {

std::filesystem::path assets_dir() {
  const char* env = std::getenv("DIVPRUNE_ASSETS");
  return env != nullptr && *env != '\0' ? std::filesystem::path(env) : std::filesystem::path(DIVPRUNE_ASSETS_DEFAULT);
}

bool assets_present(const std::string& file) {
  const auto path = assets_dir() / file;
  if (std::filesystem::exists(path)) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    ADD_FAILURE() << "CI=true but the test asset " << path << " is missing (set DIVPRUNE_ASSETS)";
  }
  return false;
}

std::string divprune_binary() { return DIVPRUNE_BINARY; }

CommandResult run_command(const std::string& command_line) {
  // stderr goes to a temporary file so both streams can be inspected separately.
  const auto err_path = std::filesystem::temp_directory_path() /
                        ("divprune-test-stderr-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
  const std::string full = command_line + " 2>" + err_path.string();
  CommandResult result;
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  result.err = text.str();
  std::filesystem::remove(err_path);
  return result;
}

CommandResult run_divprune(const std::string& args) { return run_command(divprune_binary() + " " + args); }

KilledRun run_until_log_then_kill(const std::string& shell_command, const std::filesystem::path& log,
                                  const std::string& marker, int timeout_s) {
  const std::string exec_command = "exec " + shell_command;  // the shell becomes the process we kill
  const pid_t pid = ::fork();
  if (pid < 0) return {};
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", exec_command.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  KilledRun result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (!result.marker_seen && std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    result.marker_seen = text.str().find(marker) != std::string::npos;
    if (!result.marker_seen) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  return result;
}

}  // namespace divprune::test

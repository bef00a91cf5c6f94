#pragma once
// Helpers for tests that run the divprune binary.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/model/test_util.hpp"

namespace divprune::test {

// Single-quotes a path or argument for the shell that run_divprune uses.
inline std::string quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}
inline std::string quote(const fs::path& path) { return quote(path.string()); }

inline std::string last_line(const std::string& text) {
  const auto lines = split_lines(text);
  return lines.empty() ? std::string() : lines.back();
}

// Lines of `text` that start with `prefix`.
inline std::vector<std::string> lines_starting_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& line : split_lines(text))
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

// Parses the `ppl <value> tokens <n>` line (value with a decimal point) that perplexity and demo print last.
struct PplLine {
  bool ok = false;
  double ppl = 0.0;
  long tokens = 0;
};
inline PplLine parse_ppl_line(const std::string& line) {
  PplLine out;
  int used = 0;
  if (line.rfind("ppl ", 0) != 0 || line.find('.') == std::string::npos) return out;
  if (std::sscanf(line.c_str(), "ppl %lf tokens %ld%n", &out.ppl, &out.tokens, &used) == 2 &&
      used == static_cast<int>(line.size()) && out.tokens >= 0)
    out.ok = true;
  return out;
}

// run_divprune under a time limit, so a hang fails the test (exit code 124) instead of stalling CI.
inline CommandResult run_cli(const std::string& args, int limit_s = 300) {
  return run_command("timeout " + std::to_string(limit_s) + " " + quote(divprune_binary()) + " " + args);
}

// A readable dump of a command's result for failure messages.
inline std::string describe(const CommandResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

// Bad input: exit code 2 and exactly one stderr line `divprune: error: ...` that contains every needle.
inline void expect_one_error_line(const CommandResult& r, const std::vector<std::string>& needles) {
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  const auto lines = split_lines(r.err);
  ASSERT_EQ(lines.size(), 1u) << describe(r);
  EXPECT_EQ(lines[0].rfind("divprune: error: ", 0), 0u) << lines[0];
  for (const auto& needle : needles)
    EXPECT_NE(lines[0].find(needle), std::string::npos) << "lacks \"" << needle << "\": " << lines[0];
}

}  // namespace divprune::test

#pragma once
// Launching divprune under mpirun from a test (as root in CI, more ranks than cores), with a time limit so a
// hang fails the test instead of blocking CI.
#include <string>

#include "tests/support/assets.hpp"

namespace divprune::test {

inline std::string mpirun(int ranks, int limit_s = 600) {
  return "timeout " + std::to_string(limit_s) + " mpirun --oversubscribe --allow-run-as-root -np " + std::to_string(ranks) +
         " ";
}

// Parses the last `ppl X tokens N` line of a perplexity run.
inline bool parse_ppl(const std::string& out, double* ppl, long* tokens) {
  const size_t at = out.rfind("ppl ");
  return at != std::string::npos && std::sscanf(out.c_str() + at, "ppl %lf tokens %ld", ppl, tokens) == 2;
}

}  // namespace divprune::test

#pragma once
// A small search run on tiny-llama2-trained: the evaluation configuration of tests/metrics/run_util.hpp plus the
// space / sample / train / search sections.
#include <string>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {

inline constexpr double kBudget = 0.4, kTolerance = 0.04;

inline std::string search_sections(int samples = 12, int rounds = 2, int per_round = 3,
                                   const std::string& objective = "mean_kl") {
  return "space:\n"
         "  sparsity_levels: [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]\n"
         "  methods: [magnitude, magnitude_row]\n"
         "  int8: true\n"
         "  removable_layers: [1, 2, 3, 4]\n"
         "  max_removed_layers: 1\n"
         "  budget: {sparsity: 0.4, tolerance: 0.04}\n"
         "sample:\n  count: " + std::to_string(samples) + "\n  seed: 3\n"
         "train:\n  objective: " + objective + "\n  folds: 4\n  rounds: 60\n  max_depth: 3\n"
         "search:\n  rounds: " + std::to_string(rounds) + "\n  evaluate: " + std::to_string(per_round) +
         "\n  generations: 8\n  population: 24\n  parents: 6\n  seed: 5\n";
}

// tests/metrics config with no evaluate plans and the search sections; stages given with --set.
inline std::string search_config(const fs::path& archive, const std::string& sections, int ctx = 32, int chunks = 2) {
  std::string c = config(archive, "    - base\n", ctx, chunks, 64);
  return c + sections;
}

}  // namespace divprune::test

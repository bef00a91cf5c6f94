#pragma once
// Combines per-rank vocab partials (kernels/backend.hpp) into whole-vocabulary statistics, so that no rank
// ever needs the full logits: log-partition log Z, argmax (ties toward the lower id, on every tp), and the
// negative log-likelihood of the targets.
#include <cstdint>
#include <span>
#include <vector>

#include "core/communicator.hpp"
#include "kernels/backend.hpp"

namespace divprune {

struct TokenStats {
  std::vector<double> log_z;     // (n) log sum_v exp(logit_v)
  std::vector<int32_t> argmax;   // (n)
  std::vector<double> nll;       // (n) log_z - logit[target]; empty without targets
};

// Collective over `comm`: every rank of the group gets the same result.
TokenStats combine_vocab_partials(const VocabPartials& local, Communicator& comm, bool with_targets);

}  // namespace divprune

#include "model/vocab_stats.hpp"

#include <cmath>

namespace divprune {

TokenStats combine_vocab_partials(const VocabPartials& local, Communicator& comm, bool with_targets) {
  const size_t n = local.max.size();
  const int ranks = comm.size();
  // Per-rank maxima and argmaxes of every row: block r of the gathered arrays comes from rank r, and ranks
  // hold ascending vocab slices, so the first rank reaching the global max holds the lowest tying id.
  std::vector<float> all_max(n * ranks);
  std::vector<int32_t> all_arg(n * ranks);
  comm.allgather(std::span<const float>(local.max), all_max);
  comm.allgather(std::span<const int32_t>(local.argmax), all_arg);
  TokenStats out;
  out.log_z.resize(n);
  out.argmax.resize(n);
  std::vector<float> global_max(n);
  for (size_t i = 0; i < n; ++i) {
    float best = all_max[i];
    int32_t arg = all_arg[i];
    for (int r = 1; r < ranks; ++r) {
      if (all_max[r * n + i] > best) {
        best = all_max[r * n + i];
        arg = all_arg[r * n + i];
      }
    }
    global_max[i] = best;
    out.argmax[i] = arg;
  }
  // sum_exp rescaled to the global max, plus the target logit (zero on ranks not owning the target).
  std::vector<float> sums(2 * n);
  for (size_t i = 0; i < n; ++i) {
    sums[i] = local.sum_exp[i] * std::exp(local.max[i] - global_max[i]);
    sums[n + i] = with_targets && local.has_target[i] ? local.target_logit[i] : 0.0f;
  }
  comm.allreduce_sum(sums);
  if (with_targets) out.nll.resize(n);
  for (size_t i = 0; i < n; ++i) {
    out.log_z[i] = static_cast<double>(global_max[i]) + std::log(static_cast<double>(sums[i]));
    if (with_targets) out.nll[i] = out.log_z[i] - sums[n + i];
  }
  return out;
}

}  // namespace divprune

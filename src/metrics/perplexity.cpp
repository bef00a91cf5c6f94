#include "metrics/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>

#include "core/progress.hpp"
#include "parallel/worker_pool.hpp"

namespace divprune {

double NllSum::perplexity() const { return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0; }

TokenStats score_chunk(LlamaModel& model, KvCache& cache, std::span<const int32_t> chunk, int32_t bos_id) {
  std::vector<int32_t> input;
  input.reserve(chunk.size() + 1);
  input.push_back(bos_id);
  input.insert(input.end(), chunk.begin(), chunk.end());
  // The last input position predicts nothing that is scored: feed all but the last token.
  std::span<const int32_t> fed(input.data(), chunk.size());
  Tensor logits = model.forward(fed, 0, cache);
  VocabPartials partials;
  model.backend().vocab_partials(logits, chunk, model.layout().vocab.begin, partials);
  return combine_vocab_partials(partials, model.comm(), true);
}

NllSum score_chunks(LlamaModel& model, const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, int32_t bos_id) {
  return score_chunks(std::vector<LlamaModel*>{&model}, chunks, indices, bos_id);
}

NllSum score_chunks(const std::vector<LlamaModel*>& workers, const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, int32_t bos_id) {
  size_t longest = 0;
  for (size_t i : indices) longest = std::max(longest, chunks[i].size());
  std::vector<double> chunk_nll(indices.size(), 0.0);
  std::vector<int64_t> chunk_tokens(indices.size(), 0);
  Progress progress("perplexity chunks", static_cast<long>(indices.size()));
  std::mutex progress_mutex;
  run_tasks(workers, static_cast<int64_t>(indices.size()), static_cast<int64_t>(longest),
            [&](LlamaModel& model, KvCache& cache, int64_t task) {
              const auto k = static_cast<size_t>(task);
              const TokenStats stats = score_chunk(model, cache, chunks[indices[k]], bos_id);
              for (double v : stats.nll) chunk_nll[k] += v;
              chunk_tokens[k] = static_cast<int64_t>(stats.nll.size());
              std::lock_guard<std::mutex> lock(progress_mutex);
              progress.advance();
            });
  NllSum sum;
  for (size_t k = 0; k < indices.size(); ++k) {
    sum.nll += chunk_nll[k];
    sum.tokens += chunk_tokens[k];
    const auto chunk = static_cast<int64_t>(indices[k]);
    if (!std::isfinite(chunk_nll[k]) && (sum.first_nonfinite_chunk < 0 || chunk < sum.first_nonfinite_chunk))
      sum.first_nonfinite_chunk = chunk;
  }
  return sum;
}

}  // namespace divprune

#include "core/errors.hpp"
#include "parallel/topology.hpp"

namespace divprune {

NllSum replicated_perplexity(const std::vector<LlamaModel*>& workers, const std::vector<std::vector<int32_t>>& chunks,
                             const Topology& topology, int32_t bos_id, size_t* local_chunks) {
  std::vector<size_t> mine;
  for (size_t i = static_cast<size_t>(topology.replica); i < chunks.size(); i += static_cast<size_t>(topology.replicas))
    mine.push_back(i);
  if (local_chunks != nullptr) *local_chunks = mine.size();
  NllSum local = score_chunks(workers, chunks, mine, bos_id);
  // Every tp rank of a replica holds the same sums: only replica leaders contribute.
  double send[2] = {topology.is_replica_leader() ? local.nll : 0.0,
                    topology.is_replica_leader() ? static_cast<double>(local.tokens) : 0.0};
  double recv[2] = {0.0, 0.0};
  CHECK_MPI(MPI_Reduce(send, recv, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD));
  int64_t bad = local.first_nonfinite_chunk < 0 ? INT64_MAX : local.first_nonfinite_chunk;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT64_T, MPI_MIN, MPI_COMM_WORLD));
  NllSum total;
  total.first_nonfinite_chunk = bad == INT64_MAX ? -1 : bad;
  total.nll = recv[0];
  total.tokens = static_cast<int64_t>(recv[1]);
  return total;
}

}  // namespace divprune

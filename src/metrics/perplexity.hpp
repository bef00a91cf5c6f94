#pragma once
// Teacher-forced scoring (protocol step 4-5): each chunk is fed as [BOS] + chunk and every chunk token is
// scored, the first one predicted from BOS alone.
#include <cstdint>
#include <span>
#include <vector>

#include "model/llama.hpp"
#include "model/vocab_stats.hpp"

namespace divprune {

struct NllSum {
  double nll = 0.0;
  int64_t tokens = 0;
  // The smallest chunk index whose NLL is NaN or infinite (the model's outputs overflowed), -1 if none. The sum
  // is then meaningless: callers report the chunk instead of printing "ppl nan".
  int64_t first_nonfinite_chunk = -1;
  double perplexity() const;
};

// Per-token statistics of one chunk (nll, log Z, argmax of each predicting position). Collective over the
// model's tensor-parallel group.
TokenStats score_chunk(LlamaModel& model, KvCache& cache, std::span<const int32_t> chunk, int32_t bos_id);

// Sums the NLL of chunks[i] for i in `indices`, logging progress. Collective over the tensor-parallel group.
NllSum score_chunks(LlamaModel& model, const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, int32_t bos_id);
// Same, with the chunks shared among concurrent workers (ModelReplica::workers()). Per-chunk sums are added in
// chunk order, so the result does not depend on the number of workers.
NllSum score_chunks(const std::vector<LlamaModel*>& workers, const std::vector<std::vector<int32_t>>& chunks,
                    const std::vector<size_t>& indices, int32_t bos_id);

}  // namespace divprune

namespace divprune {

struct Topology;

// Chunk i goes to replica i % replicas (a static split: every chunk costs about the same). The NLL sums of
// all replicas are reduced onto the coordinator (only there is the result complete); `local_chunks` reports
// how many this replica scored. first_nonfinite_chunk is reduced onto every rank, so all can fail alike.
NllSum replicated_perplexity(const std::vector<LlamaModel*>& workers, const std::vector<std::vector<int32_t>>& chunks,
                             const Topology& topology, int32_t bos_id, size_t* local_chunks = nullptr);

}  // namespace divprune

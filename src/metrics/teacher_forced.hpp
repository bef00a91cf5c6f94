#pragma once
// Teacher-forced scoring shared by the baseline and evaluate stages, so that the base model's stored outputs
// and a compressed model's outputs come from exactly the same computation (same sequence, same positions).
#include <cstdint>
#include <span>
#include <vector>

#include "model/llama.hpp"
#include "model/vocab_stats.hpp"

namespace divprune {

// Feeds [BOS] + context + targets[:-1] (positions 0..) and scores every target: row i of the result predicts
// targets[i] (the first target is predicted from BOS + context). Collective over the model's tp group.
struct ScoredTargets {
  Tensor logits;     // (targets, V_local): this rank's vocab slice; a view valid until the model's next forward
  TokenStats stats;  // log_z, argmax (ties -> lower id) and nll of every target, whole vocabulary
};
ScoredTargets score_targets(LlamaModel& model, KvCache& cache, std::span<const int32_t> context,
                            std::span<const int32_t> targets, int32_t bos_id);

// Sum of log p(choice tokens | BOS + context). Collective over the tp group.
double choice_logprob(LlamaModel& model, KvCache& cache, std::span<const int32_t> context,
                      std::span<const int32_t> choice, int32_t bos_id);

}  // namespace divprune

#pragma once
// What a replica computes for one plan (PlanOutputs), what the baseline stored about the base model
// (BaseOutputs), and the comparison of the two (compare_to_base), which the coordinator runs before it
// archives a plan. The summaries are metrics/summary.hpp tables (enum-indexed; names, units and descriptions
// from kSummaryMetrics): the archive writes them as scalar datasets of /plans/<id>/summary.
#include <cstdint>
#include <string>
#include <vector>

#include "metrics/eval_data.hpp"
#include "metrics/summary.hpp"
#include "parallel/work_queue.hpp"

namespace divprune {

struct BaseOutputs {
  std::vector<double> nll;              // (T) per scored perplexity token
  std::vector<int32_t> argmax;          // (T)
  std::vector<int32_t> continuation;    // (P, N) greedy continuation (incremental decoding with the KV cache)
  std::vector<int32_t> tf_argmax;       // (P, N) teacher-forced argmax on prompt + continuation
  std::vector<double> mc_logprob;       // (C) sum of log-probs of each choice's tokens, all items' choices in order
};

struct PlanOutputs {
  std::vector<double> nll;              // (T)
  std::vector<int32_t> argmax;          // (T)
  std::vector<double> kl;               // (T_kept) KL(base || compressed) of the kept tokens
  std::vector<int32_t> tf_argmax;       // (P, N) teacher-forced on prompt + base continuation
  std::vector<double> mc_logprob;       // (C)
  double seconds = 0.0;                 // wall time of the plan on its replica (apply + forward passes)
};
Bytes serialize(const PlanOutputs& outputs);
PlanOutputs deserialize_plan_outputs(const Bytes& bytes);

// Multiple-choice predictions of each item from per-choice log-prob sums: by the sum, and by the sum divided
// by the choice's token count (length-normalised). Ties -> lower choice index.
void mc_predictions(const EvalSet& set, const std::vector<double>& logprob, std::vector<int32_t>& by_sum,
                    std::vector<int32_t>& by_mean);
// Per-choice mean log-prob (sum / tokens).
std::vector<double> mc_mean_logprob(const EvalSet& set, const std::vector<double>& logprob);

// Summary of the base model alone (perplexity, accuracies, teacher-forced agreement with its own continuation).
// Metrics: Perplexity, Tokens, TfFdtMean, McAccuracySum, McAccuracyMean, McItems.
Summary summarize_base(const EvalSet& set, const BaseOutputs& base);

struct PlanComparison {
  std::vector<uint8_t> same_top1;       // (T) compressed argmax == base argmax
  std::vector<double> dp;               // (T) p_c(correct) - p_b(correct) = exp(-nll_c) - exp(-nll_b)
  std::vector<int32_t> fdt;             // (P)
  std::vector<double> sdt;              // (P)
  std::vector<int32_t> pred_sum;        // (I)
  std::vector<int32_t> pred_mean;       // (I)
  Summary summary;                      // every metric but TfFdtMean
};
PlanComparison compare_to_base(const EvalSet& set, const BaseOutputs& base, const PlanOutputs& plan);

}  // namespace divprune

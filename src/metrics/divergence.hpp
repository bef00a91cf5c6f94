#pragma once
// Divergence of a compressed model from the base model (DESIGN: Divergent Token Metrics, "Accuracy is not all
// you need"): per-token KL(base || compressed), same-top-1 agreement, Δp of the correct token, FDT / SDT of a
// teacher-forced greedy continuation, multiple-choice flips; and the sample summaries the archive stores.
// Everything here works on host arrays; the distributed (vocab-sliced) KL is at the end.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/communicator.hpp"
#include "kernels/backend.hpp"

namespace divprune {

// ---- Sample summaries ----------------------------------------------------------------------------------------
// Percentile levels reported for per-token statistics, in this order: max, 99.9, 99, 95, 90, median, 10, 5, 1,
// 0.1, min. Percentiles interpolate linearly between order statistics (numpy.percentile's default).
inline constexpr std::array<double, 11> kPercentileLevels = {100, 99.9, 99, 95, 90, 50, 10, 5, 1, 0.1, 0};
// Dataset-name suffixes of the levels: "p100", "p99_9", ... "p0".
std::string percentile_name(double level);

struct SampleSummary {
  int64_t count = 0;
  double mean = 0.0;
  double std = 0.0;       // sample standard deviation (n - 1); 0 for n < 2
  double stderr_ = 0.0;   // std / sqrt(n): the standard error of the mean
  double rms = 0.0;       // sqrt(mean of squares)
  std::array<double, kPercentileLevels.size()> percentiles{};  // at kPercentileLevels; NaN when empty
};
SampleSummary summarize(std::span<const double> values);
// Percentile of sorted values at `level` in [0, 100] (linear interpolation).
double percentile_sorted(std::span<const double> sorted, double level);
double median(std::vector<double> values);

// ---- Per-token statistics --------------------------------------------------------------------------------------
// log sum_j exp(x_j), in double.
double log_sum_exp(std::span<const float> values);
// KL(p || q) = sum_j p_j (log p_j - log q_j) of two whole-vocabulary log-probability rows (the reference
// formula the distributed KL is tested against). Terms with p_j = 0 contribute nothing.
double kl_divergence(std::span<const double> log_p, std::span<const double> log_q);

// First divergent token and share of divergent tokens of one prompt: `reference` is the base model's greedy
// continuation (N tokens), `argmax` the compressed model's teacher-forced argmax at the same N positions.
// FDT = first position where they differ (N if none), SDT = (positions where they differ) / N.
struct DivergentTokens {
  int64_t fdt = 0;
  double sdt = 0.0;
};
DivergentTokens divergent_tokens(std::span<const int32_t> reference, std::span<const int32_t> argmax);

// ---- Multiple choice -------------------------------------------------------------------------------------------
// Index of the largest score; ties go to the lower index.
int32_t choose(std::span<const double> scores);

// Flips of a compressed model against the base model on the same items (Dutta et al.).
struct FlipCounts {
  int64_t items = 0;
  int64_t base_correct = 0;
  int64_t correct = 0;            // compressed model
  int64_t correct_to_wrong = 0;   // base right, compressed wrong
  int64_t wrong_to_correct = 0;   // base wrong, compressed right
  int64_t total() const { return correct_to_wrong + wrong_to_correct; }
  double rate(int64_t count) const { return items > 0 ? static_cast<double>(count) / static_cast<double>(items) : 0.0; }
};
FlipCounts count_flips(std::span<const int32_t> answer, std::span<const int32_t> base_pred,
                       std::span<const int32_t> pred);

// ---- Distributed KL -----------------------------------------------------------------------------------------
// KL(base || model) of every row of this rank's logits slice (n, V_local), summed over the tensor-parallel
// group `comm` (collective; every rank gets the result). The base log-probs of this rank's slice are
// base_values - base_offset[row] (Backend::kl_partials): normalised over the whole vocabulary with full
// storage, -inf outside the stored top-k with top-k storage. `log_z` comes from combine_vocab_partials; its
// rounding (float partial sums, a vectorised float exp) is removed here: the model's total probability,
// summed in double, gives log p_c exactly normalised.
// With `topk_tail`, the tokens outside the stored top-k form one extra outcome ("the tail"): the result is the
// KL of the coarse-grained distributions, a lower bound of the true KL (data-processing inequality).
std::vector<double> distributed_kl(Backend& backend, Communicator& comm, const Tensor& logits,
                                   std::span<const float> base_values, std::span<const double> base_offset,
                                   std::span<const double> log_z, bool topk_tail);

}  // namespace divprune

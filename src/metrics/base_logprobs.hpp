#pragma once
// Storage of the base model's next-token log-probabilities (archive: /baseline/logprobs or /baseline/topk_*)
// and their use in the distributed KL.
//
// Full storage keeps every token's log-prob as IEEE fp16 (log p - shift, shift = -entropy of the row; see
// encode_logprobs), rounded to nearest even. Reading renormalises each row by subtracting the log-sum-exp of its
// own fp16 values, so that the base distribution used in the KL sums to one (and the shift cancels). The KL error this causes is measured and bounded by a test
// (tests/metrics/test_divergence.cpp and src/archive/SCHEMA.md, "Numerical error of stored log-probs").
//
// Top-k storage keeps the k largest log-probs (ties -> lower id) and their ids; the KL is then that of the
// distributions coarse-grained to {top-k tokens, everything else} (metrics/divergence.hpp: distributed_kl).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/enum_names.hpp"
#include "model/shard.hpp"

namespace divprune {

enum class LogprobMode { None, Full, TopK };
inline constexpr auto kLogprobModeNames = enum_names<LogprobMode>(
    "log-prob storage", {{LogprobMode::None, "none"}, {LogprobMode::Full, "full"}, {LogprobMode::TopK, "topk"}});
static_assert(kLogprobModeNames.names_unique());
inline LogprobMode parse_logprob_mode(const std::string& name, const std::string& where) {
  return kLogprobModeNames.parse(name, where);
}
// Null-terminated (the table's names are literals).
inline const char* logprob_mode_name(LogprobMode mode) { return kLogprobModeNames.name(mode).data(); }

// logits (n, V) fp32 row-major with their whole-vocabulary log Z -> fp16 bits of log p - shift, where log p =
// logit - log Z and shift = sum_v p_v log p_v (minus the row's entropy), returned in `shift` (n).
// Why the shift: fp16 spacing grows with |x|, and the tokens that carry the probability mass sit around
// log p = -entropy; centring them on 0 stores them 2-8x more finely. The KL error of storage falls with the
// square (measured on tiny-llama2-trained / WikiText-2: mean self-KL 5.8e-7 -> 1.3e-7 nats). Readers add the
// shift back, or simply renormalise (log-sum-exp of the stored row), which removes any per-row constant.
std::vector<uint16_t> encode_logprobs(std::span<const float> logits, int64_t n, int64_t vocab,
                                      std::span<const double> log_z, std::vector<double>& shift);
// The k largest entries of every row: ids (n, k) ordered by decreasing log-prob (ties -> lower id) and the
// fp16 bits of their log-probs.
void encode_topk(std::span<const float> logits, int64_t n, int64_t vocab, std::span<const double> log_z, int64_t k,
                 std::vector<int32_t>& ids, std::vector<uint16_t>& values);
// Log-sum-exp of every row of fp16 bits (n, width), in double.
std::vector<double> half_row_lse(std::span<const uint16_t> bits, int64_t n, int64_t width);

// One rank's share of the stored base log-probs of the kept perplexity chunks.
class BaseLogprobSlices {
 public:
  BaseLogprobSlices() = default;
  BaseLogprobSlices(LogprobMode mode, int64_t vocab, Range slice) : mode_(mode), vocab_(vocab), slice_(slice) {}
  LogprobMode mode() const { return mode_; }
  int64_t chunks() const { return static_cast<int64_t>(rows_.size()); }

  // Full mode: the chunk's whole rows (n, vocab) as fp16 bits and their log-sum-exps; keeps this rank's columns.
  void add_full_chunk(std::span<const uint16_t> rows, int64_t n, std::span<const double> lse);
  // Top-k mode: (n, k) ids and fp16 bits; every rank keeps all of them (they are small).
  void add_topk_chunk(std::span<const int32_t> ids, std::span<const uint16_t> values, int64_t n, int64_t k);

  // Chunk c on this rank's slice, in the form Backend::kl_partials takes: log p_b = values - offset[row].
  // Full: values are the stored fp16 numbers (exact in float), offset their row's log-sum-exp (renormalisation).
  // Top-k: the stored log-probs at their ids, -inf elsewhere; offset 0 (not renormalised).
  void dense(int64_t chunk, std::vector<float>& values, std::vector<double>& offset) const;

 private:
  LogprobMode mode_ = LogprobMode::None;
  int64_t vocab_ = 0;
  Range slice_;
  int64_t k_ = 0;
  std::vector<int64_t> rows_;                 // per chunk
  std::vector<std::vector<uint16_t>> bits_;   // full: (n, V_local); top-k: (n, k)
  std::vector<std::vector<double>> lse_;      // full: (n)
  std::vector<std::vector<int32_t>> ids_;     // top-k: (n, k)
};

}  // namespace divprune

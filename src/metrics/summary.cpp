#include "metrics/summary.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace divprune {

using M = SummaryMetric;

namespace {
constexpr std::array<SummaryMetricInfo, kSummaryMetricCount> kTable = {{
    {M::Perplexity, "perplexity", "1", "exp(mean NLL) over the perplexity tokens",
     "exp(mean NLL) of the base model over the perplexity tokens"},
    {M::PerplexityRatio, "perplexity_ratio", "1", "perplexity / base perplexity", nullptr},
    {M::Tokens, "tokens", "tokens", "scored perplexity tokens", nullptr},
    {M::KlMean, "kl_mean", "nats", "mean per-token KL(base || compressed) over the kept tokens", nullptr},
    {M::KlStderr, "kl_stderr", "nats", "standard error of kl_mean (sample std / sqrt(n))", nullptr},
    {M::KlStd, "kl_std", "nats", "sample standard deviation of the per-token KL", nullptr},
    {M::KlTokens, "kl_tokens", "tokens", "tokens with stored base log-probs (KL sample size)", nullptr},
    {M::KlP100, "kl_p100", "nats", "100th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP99_9, "kl_p99_9", "nats", "99.9th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP99, "kl_p99", "nats", "99th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP95, "kl_p95", "nats", "95th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP90, "kl_p90", "nats", "90th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP50, "kl_p50", "nats", "50th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP10, "kl_p10", "nats", "10th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP5, "kl_p5", "nats", "5th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP1, "kl_p1", "nats", "1th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP0_1, "kl_p0_1", "nats", "0.1th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::KlP0, "kl_p0", "nats", "0th percentile of the per-token KL (linear interpolation)", nullptr},
    {M::SameTop1Rate, "same_top1_rate", "1",
     "share of perplexity tokens whose argmax equals the base argmax (ties -> lower id)", nullptr},
    {M::DpMean, "dp_mean", "probability", "mean of p_c(correct token) - p_b(correct token)", nullptr},
    {M::DpRms, "dp_rms", "probability", "root mean square of the per-token delta p", nullptr},
    {M::DpStderr, "dp_stderr", "probability", "standard error of dp_mean", nullptr},
    {M::FdtMean, "fdt_mean", "tokens", "mean first divergent token position (N when none diverges)", nullptr},
    {M::FdtMedian, "fdt_median", "tokens", "median first divergent token position", nullptr},
    {M::FdtReachNRate, "fdt_reach_n_rate", "1", "share of prompts with no divergent token (FDT = N)", nullptr},
    {M::SdtMean, "sdt_mean", "1", "mean share of divergent tokens per prompt", nullptr},
    {M::SdtMedian, "sdt_median", "1", "median share of divergent tokens per prompt", nullptr},
    {M::Prompts, "prompts", "prompts", "greedy-continuation prompts", nullptr},
    {M::ContinuationTokens, "continuation_tokens", "tokens", "N: base greedy tokens per prompt", nullptr},
    {M::McItems, "mc_items", "items", "multiple-choice items", nullptr},
    {M::McAccuracySum, "mc_accuracy_sum", "1",
     "multiple-choice accuracy choosing by the sum of the choice tokens' log-probs",
     "multiple-choice accuracy, choosing by the sum of the choice tokens' log-probs"},
    {M::McBaseAccuracySum, "mc_base_accuracy_sum", "1",
     "base model's multiple-choice accuracy choosing by the sum of the choice tokens' log-probs", nullptr},
    {M::McFlipsSumCorrectToWrong, "mc_flips_sum_correct_to_wrong", "items",
     "items the base got right and the compressed model wrong (the sum of the choice tokens' log-probs)", nullptr},
    {M::McFlipsSumWrongToCorrect, "mc_flips_sum_wrong_to_correct", "items",
     "items the base got wrong and the compressed model right (the sum of the choice tokens' log-probs)", nullptr},
    {M::McFlipsSumTotal, "mc_flips_sum_total", "items",
     "flips in either direction (the sum of the choice tokens' log-probs)", nullptr},
    {M::McFlipRateSumCorrectToWrong, "mc_flip_rate_sum_correct_to_wrong", "1", "correct-to-wrong flips / items", nullptr},
    {M::McFlipRateSumWrongToCorrect, "mc_flip_rate_sum_wrong_to_correct", "1", "wrong-to-correct flips / items", nullptr},
    {M::McFlipRateSumTotal, "mc_flip_rate_sum_total", "1", "flips / items", nullptr},
    {M::McAccuracyMean, "mc_accuracy_mean", "1",
     "multiple-choice accuracy choosing by the mean log-prob per choice token (length-normalised)",
     "multiple-choice accuracy, choosing by the mean log-prob per choice token (length-normalised)"},
    {M::McBaseAccuracyMean, "mc_base_accuracy_mean", "1",
     "base model's multiple-choice accuracy choosing by the mean log-prob per choice token (length-normalised)",
     nullptr},
    {M::McFlipsMeanCorrectToWrong, "mc_flips_mean_correct_to_wrong", "items",
     "items the base got right and the compressed model wrong (the mean log-prob per choice token "
     "(length-normalised))",
     nullptr},
    {M::McFlipsMeanWrongToCorrect, "mc_flips_mean_wrong_to_correct", "items",
     "items the base got wrong and the compressed model right (the mean log-prob per choice token "
     "(length-normalised))",
     nullptr},
    {M::McFlipsMeanTotal, "mc_flips_mean_total", "items",
     "flips in either direction (the mean log-prob per choice token (length-normalised))", nullptr},
    {M::McFlipRateMeanCorrectToWrong, "mc_flip_rate_mean_correct_to_wrong", "1", "correct-to-wrong flips / items",
     nullptr},
    {M::McFlipRateMeanWrongToCorrect, "mc_flip_rate_mean_wrong_to_correct", "1", "wrong-to-correct flips / items",
     nullptr},
    {M::McFlipRateMeanTotal, "mc_flip_rate_mean_total", "1", "flips / items", nullptr},
    {M::TfFdtMean, "tf_fdt_mean", "tokens", nullptr,
     "mean FDT of the base model's teacher-forced argmax against its own incremental greedy continuation "
     "(N unless near-ties resolve differently in the two computations)"},
}};

constexpr bool in_enum_order(const std::array<SummaryMetricInfo, kSummaryMetricCount>& table) {
  for (size_t i = 0; i < table.size(); ++i)
    if (static_cast<size_t>(table[i].metric) != i) return false;
  return true;
}
static_assert(in_enum_order(kTable), "kSummaryMetrics must list the metrics in enum order");
}  // namespace

const std::array<SummaryMetricInfo, kSummaryMetricCount> kSummaryMetrics = kTable;

const SummaryMetricInfo& summary_metric_info(SummaryMetric metric) { return kSummaryMetrics[static_cast<size_t>(metric)]; }

const char* summary_metric_name(SummaryMetric metric) { return summary_metric_info(metric).name; }

const char* summary_metric_description(SummaryMetric metric, bool base) {
  const SummaryMetricInfo& info = summary_metric_info(metric);
  if (base && info.base_description != nullptr) return info.base_description;
  return info.description != nullptr ? info.description : info.base_description;
}

std::optional<SummaryMetric> summary_metric_from_name(std::string_view name) {
  for (const SummaryMetricInfo& info : kSummaryMetrics)
    if (name == info.name) return info.metric;
  return std::nullopt;
}

void Summary::set(SummaryMetric metric, double value) {
  values_[index(metric)] = value;
  present_[index(metric)] = true;
}

double Summary::operator[](SummaryMetric metric) const {
  return has(metric) ? values_[index(metric)] : std::numeric_limits<double>::quiet_NaN();
}

double Summary::at(SummaryMetric metric) const {
  if (!has(metric)) throw std::out_of_range(std::string("summary has no metric ") + summary_metric_name(metric));
  return values_[index(metric)];
}

std::vector<SummaryMetric> Summary::metrics() const {
  std::vector<SummaryMetric> out;
  for (const SummaryMetricInfo& info : kSummaryMetrics)
    if (has(info.metric)) out.push_back(info.metric);
  return out;
}

size_t Summary::size() const {
  size_t n = 0;
  for (bool p : present_) n += p;
  return n;
}

}  // namespace divprune

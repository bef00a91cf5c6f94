#pragma once
// The summary scalars of a plan (/plans/<id>/summary) and of the base model (/baseline/summary), indexed by an
// enum instead of looked up by string: a misspelt metric does not compile, where `s["kl_mena"]` read 0.
// kSummaryMetrics is the one name table: the archive's dataset names, units and descriptions come from it, and
// anything that names a metric in text (the search objective, analysis) maps through it.
#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace divprune {

enum class SummaryMetric {
  Perplexity,
  PerplexityRatio,
  Tokens,
  KlMean,
  KlStderr,
  KlStd,
  KlTokens,
  KlP100,  // the percentiles of metrics/divergence.hpp kPercentileLevels, in that order
  KlP99_9,
  KlP99,
  KlP95,
  KlP90,
  KlP50,
  KlP10,
  KlP5,
  KlP1,
  KlP0_1,
  KlP0,
  SameTop1Rate,
  DpMean,
  DpRms,
  DpStderr,
  FdtMean,
  FdtMedian,
  FdtReachNRate,
  SdtMean,
  SdtMedian,
  Prompts,
  ContinuationTokens,
  McItems,
  McAccuracySum,  // the eight multiple-choice metrics of choosing by the sum, then the same eight by the mean
  McBaseAccuracySum,
  McFlipsSumCorrectToWrong,
  McFlipsSumWrongToCorrect,
  McFlipsSumTotal,
  McFlipRateSumCorrectToWrong,
  McFlipRateSumWrongToCorrect,
  McFlipRateSumTotal,
  McAccuracyMean,
  McBaseAccuracyMean,
  McFlipsMeanCorrectToWrong,
  McFlipsMeanWrongToCorrect,
  McFlipsMeanTotal,
  McFlipRateMeanCorrectToWrong,
  McFlipRateMeanWrongToCorrect,
  McFlipRateMeanTotal,
  TfFdtMean,  // base model only
};
inline constexpr size_t kSummaryMetricCount = static_cast<size_t>(SummaryMetric::TfFdtMean) + 1;

struct SummaryMetricInfo {
  SummaryMetric metric;
  const char* name;              // dataset name under summary/ (src/archive/SCHEMA.md)
  const char* units;
  const char* description;       // as a plan summary
  const char* base_description;  // as a /baseline summary, when it reads differently there (else nullptr)
};
// In enum order (checked at compile time in summary.cpp).
extern const std::array<SummaryMetricInfo, kSummaryMetricCount> kSummaryMetrics;

const SummaryMetricInfo& summary_metric_info(SummaryMetric metric);
const char* summary_metric_name(SummaryMetric metric);
// The description the archive writes beside the value (`base`: under /baseline/summary).
const char* summary_metric_description(SummaryMetric metric, bool base);
std::optional<SummaryMetric> summary_metric_from_name(std::string_view name);

// One summary: a value for some of the metrics (a plan has every metric but TfFdtMean; the base model has six).
class Summary {
 public:
  void set(SummaryMetric metric, double value);
  bool has(SummaryMetric metric) const { return present_[index(metric)]; }
  // NaN when the summary has no such metric (never a silent 0).
  double operator[](SummaryMetric metric) const;
  // std::out_of_range naming the metric when the summary has no such metric.
  double at(SummaryMetric metric) const;
  // The metrics present, in enum order.
  std::vector<SummaryMetric> metrics() const;
  size_t size() const;

 private:
  static size_t index(SummaryMetric metric) { return static_cast<size_t>(metric); }
  std::array<double, kSummaryMetricCount> values_{};
  std::array<bool, kSummaryMetricCount> present_{};
};

}  // namespace divprune

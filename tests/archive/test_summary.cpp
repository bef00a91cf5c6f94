// The summary metric table (metrics/summary.hpp): one name per metric, the KL percentiles named as
// metrics/divergence.hpp names them, and a Summary that never reads a missing metric as 0.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "metrics/divergence.hpp"
#include "metrics/summary.hpp"

namespace divprune {
namespace {

TEST(SummaryMetrics, NamesAreUniqueAndRoundTrip) {
  std::set<std::string> names;
  for (const SummaryMetricInfo& m : kSummaryMetrics) {
    EXPECT_TRUE(names.insert(m.name).second) << m.name;
    EXPECT_EQ(summary_metric_from_name(m.name), m.metric) << m.name;
    EXPECT_NE(summary_metric_description(m.metric, false), nullptr) << m.name;
    EXPECT_NE(summary_metric_description(m.metric, true), nullptr) << m.name;
  }
  EXPECT_EQ(names.size(), kSummaryMetricCount);
  EXPECT_FALSE(summary_metric_from_name("kl_mena").has_value());
  EXPECT_STREQ(summary_metric_name(SummaryMetric::FdtMean), "fdt_mean");
  EXPECT_STREQ(summary_metric_name(SummaryMetric::McFlipRateMeanTotal), "mc_flip_rate_mean_total");
  // The base model's perplexity reads differently from a plan's; most metrics read alike.
  EXPECT_STRNE(summary_metric_description(SummaryMetric::Perplexity, true),
               summary_metric_description(SummaryMetric::Perplexity, false));
  EXPECT_STREQ(summary_metric_description(SummaryMetric::KlMean, true),
               summary_metric_description(SummaryMetric::KlMean, false));
}

TEST(SummaryMetrics, KlPercentilesFollowTheLevels) {
  for (size_t i = 0; i < kPercentileLevels.size(); ++i) {
    const auto metric = summary_metric_from_name("kl_" + percentile_name(kPercentileLevels[i]));
    ASSERT_TRUE(metric.has_value()) << kPercentileLevels[i];
    EXPECT_EQ(static_cast<size_t>(*metric), static_cast<size_t>(SummaryMetric::KlP100) + i);
  }
}

TEST(SummaryMetrics, MissingMetricIsNaNOrThrowsNeverZero) {
  Summary s;
  EXPECT_EQ(s.size(), 0u);
  s.set(SummaryMetric::KlMean, 0.25);
  s.set(SummaryMetric::Perplexity, 12.5);
  EXPECT_TRUE(s.has(SummaryMetric::KlMean));
  EXPECT_EQ(s[SummaryMetric::KlMean], 0.25);
  EXPECT_EQ(s.at(SummaryMetric::Perplexity), 12.5);
  EXPECT_FALSE(s.has(SummaryMetric::FdtMean));
  EXPECT_TRUE(std::isnan(s[SummaryMetric::FdtMean]));
  EXPECT_THROW(s.at(SummaryMetric::FdtMean), std::out_of_range);
  EXPECT_EQ(s.size(), 2u);
  EXPECT_EQ(s.metrics(), (std::vector<SummaryMetric>{SummaryMetric::Perplexity, SummaryMetric::KlMean}));
}

}  // namespace
}  // namespace divprune

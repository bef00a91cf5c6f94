#include "metrics/plan_metrics.hpp"

#include <fmt/format.h>

#include <cmath>

#include "core/errors.hpp"
#include "metrics/divergence.hpp"

namespace divprune {

Bytes serialize(const PlanOutputs& o) {
  ByteWriter w;
  w.put_vector(o.nll);
  w.put_vector(o.argmax);
  w.put_vector(o.kl);
  w.put_vector(o.tf_argmax);
  w.put_vector(o.mc_logprob);
  w.put(o.seconds);
  return w.take();
}

PlanOutputs deserialize_plan_outputs(const Bytes& bytes) {
  ByteReader r(bytes);
  PlanOutputs o;
  o.nll = r.get_vector<double>();
  o.argmax = r.get_vector<int32_t>();
  o.kl = r.get_vector<double>();
  o.tf_argmax = r.get_vector<int32_t>();
  o.mc_logprob = r.get_vector<double>();
  o.seconds = r.get<double>();
  EXPECTS(r.done(), "PlanOutputs payload has trailing bytes");
  return o;
}

std::vector<double> mc_mean_logprob(const EvalSet& set, const std::vector<double>& logprob) {
  std::vector<double> mean(logprob.size());
  size_t at = 0;
  for (const auto& choices : set.mc_choices)
    for (const auto& c : choices) {
      mean[at] = logprob[at] / static_cast<double>(c.size());
      ++at;
    }
  return mean;
}

void mc_predictions(const EvalSet& set, const std::vector<double>& logprob, std::vector<int32_t>& by_sum,
                    std::vector<int32_t>& by_mean) {
  EXPECTS(static_cast<int64_t>(logprob.size()) == set.mc_choice_count(), "mc_predictions: one log-prob per choice");
  const std::vector<double> mean = mc_mean_logprob(set, logprob);
  by_sum.clear();
  by_mean.clear();
  size_t at = 0;
  for (const auto& choices : set.mc_choices) {
    const size_t k = choices.size();
    by_sum.push_back(choose(std::span<const double>(logprob.data() + at, k)));
    by_mean.push_back(choose(std::span<const double>(mean.data() + at, k)));
    at += k;
  }
}

namespace {

double accuracy(const std::vector<int32_t>& pred, const std::vector<int32_t>& answer) {
  if (answer.empty()) return std::nan("");
  int64_t right = 0;
  for (size_t i = 0; i < answer.size(); ++i) right += pred[i] == answer[i];
  return static_cast<double>(right) / static_cast<double>(answer.size());
}

// The summary metric of each level of kPercentileLevels.
constexpr std::array<SummaryMetric, kPercentileLevels.size()> kKlPercentileMetrics = {
    SummaryMetric::KlP100, SummaryMetric::KlP99_9, SummaryMetric::KlP99, SummaryMetric::KlP95,
    SummaryMetric::KlP90,  SummaryMetric::KlP50,   SummaryMetric::KlP10, SummaryMetric::KlP5,
    SummaryMetric::KlP1,   SummaryMetric::KlP0_1,  SummaryMetric::KlP0};

// The eight multiple-choice metrics of one way of choosing (by the sum or by the mean log-prob).
struct McMetrics {
  SummaryMetric accuracy, base_accuracy, flips_correct_to_wrong, flips_wrong_to_correct, flips_total,
      rate_correct_to_wrong, rate_wrong_to_correct, rate_total;
};
constexpr McMetrics kMcBySum = {SummaryMetric::McAccuracySum,          SummaryMetric::McBaseAccuracySum,
                                SummaryMetric::McFlipsSumCorrectToWrong, SummaryMetric::McFlipsSumWrongToCorrect,
                                SummaryMetric::McFlipsSumTotal,          SummaryMetric::McFlipRateSumCorrectToWrong,
                                SummaryMetric::McFlipRateSumWrongToCorrect, SummaryMetric::McFlipRateSumTotal};
constexpr McMetrics kMcByMean = {SummaryMetric::McAccuracyMean,          SummaryMetric::McBaseAccuracyMean,
                                 SummaryMetric::McFlipsMeanCorrectToWrong, SummaryMetric::McFlipsMeanWrongToCorrect,
                                 SummaryMetric::McFlipsMeanTotal,          SummaryMetric::McFlipRateMeanCorrectToWrong,
                                 SummaryMetric::McFlipRateMeanWrongToCorrect, SummaryMetric::McFlipRateMeanTotal};

double perplexity_of(const std::vector<double>& nll) {
  if (nll.empty()) return std::nan("");
  double s = 0.0;
  for (double v : nll) s += v;
  return std::exp(s / static_cast<double>(nll.size()));
}

}  // namespace

Summary summarize_base(const EvalSet& set, const BaseOutputs& base) {
  Summary out;
  out.set(SummaryMetric::Perplexity, perplexity_of(base.nll));
  out.set(SummaryMetric::Tokens, static_cast<double>(base.nll.size()));
  const int64_t n = set.continuation;
  double agree = 0.0;
  for (size_t p = 0; p < set.prompts.size(); ++p)
    agree += static_cast<double>(
        divergent_tokens(std::span<const int32_t>(base.continuation.data() + p * n, static_cast<size_t>(n)),
                         std::span<const int32_t>(base.tf_argmax.data() + p * n, static_cast<size_t>(n)))
            .fdt);
  out.set(SummaryMetric::TfFdtMean, set.prompts.empty() ? std::nan("") : agree / static_cast<double>(set.prompts.size()));
  std::vector<int32_t> by_sum, by_mean;
  mc_predictions(set, base.mc_logprob, by_sum, by_mean);
  out.set(SummaryMetric::McAccuracySum, accuracy(by_sum, set.mc_answer));
  out.set(SummaryMetric::McAccuracyMean, accuracy(by_mean, set.mc_answer));
  out.set(SummaryMetric::McItems, static_cast<double>(set.mc_answer.size()));
  return out;
}

PlanComparison compare_to_base(const EvalSet& set, const BaseOutputs& base, const PlanOutputs& plan) {
  const size_t tokens = base.nll.size();
  EXPECTS(plan.nll.size() == tokens && plan.argmax.size() == tokens, "plan outputs: per-token arrays do not match");
  EXPECTS(static_cast<int64_t>(plan.kl.size()) == set.kept_tokens(), "plan outputs: KL of the kept tokens");
  EXPECTS(plan.tf_argmax.size() == base.continuation.size(), "plan outputs: teacher-forced argmax");
  PlanComparison c;
  c.same_top1.resize(tokens);
  c.dp.resize(tokens);
  int64_t same = 0;
  for (size_t t = 0; t < tokens; ++t) {
    c.same_top1[t] = plan.argmax[t] == base.argmax[t];
    same += c.same_top1[t];
    c.dp[t] = std::exp(-plan.nll[t]) - std::exp(-base.nll[t]);
  }
  const int64_t n = set.continuation;
  for (size_t p = 0; p < set.prompts.size(); ++p) {
    const DivergentTokens d =
        divergent_tokens(std::span<const int32_t>(base.continuation.data() + p * n, static_cast<size_t>(n)),
                         std::span<const int32_t>(plan.tf_argmax.data() + p * n, static_cast<size_t>(n)));
    c.fdt.push_back(static_cast<int32_t>(d.fdt));
    c.sdt.push_back(d.sdt);
  }
  std::vector<int32_t> base_sum, base_mean;
  mc_predictions(set, base.mc_logprob, base_sum, base_mean);
  mc_predictions(set, plan.mc_logprob, c.pred_sum, c.pred_mean);

  using M = SummaryMetric;
  Summary& s = c.summary;
  const double base_ppl = perplexity_of(base.nll);
  const double ppl = perplexity_of(plan.nll);
  s.set(M::Perplexity, ppl);
  s.set(M::PerplexityRatio, ppl / base_ppl);
  s.set(M::Tokens, static_cast<double>(tokens));
  const SampleSummary kl = summarize(plan.kl);
  s.set(M::KlMean, kl.mean);
  s.set(M::KlStderr, kl.stderr_);
  s.set(M::KlStd, kl.std);
  s.set(M::KlTokens, static_cast<double>(kl.count));
  for (size_t i = 0; i < kPercentileLevels.size(); ++i) s.set(kKlPercentileMetrics[i], kl.percentiles[i]);
  s.set(M::SameTop1Rate, tokens ? static_cast<double>(same) / static_cast<double>(tokens) : std::nan(""));
  const SampleSummary dp = summarize(c.dp);
  s.set(M::DpMean, dp.mean);
  s.set(M::DpRms, dp.rms);
  s.set(M::DpStderr, dp.stderr_);
  std::vector<double> fdt(c.fdt.begin(), c.fdt.end());
  const SampleSummary f = summarize(fdt);
  const SampleSummary sd = summarize(c.sdt);
  int64_t reach = 0;
  for (int32_t v : c.fdt) reach += v == n;
  s.set(M::FdtMean, f.mean);
  s.set(M::FdtMedian, f.percentiles[5]);
  s.set(M::FdtReachNRate,
        set.prompts.empty() ? std::nan("") : static_cast<double>(reach) / static_cast<double>(set.prompts.size()));
  s.set(M::SdtMean, sd.mean);
  s.set(M::SdtMedian, sd.percentiles[5]);
  s.set(M::Prompts, static_cast<double>(set.prompts.size()));
  s.set(M::ContinuationTokens, static_cast<double>(n));
  s.set(M::McItems, static_cast<double>(set.mc_answer.size()));
  auto flips = [&](const McMetrics& m, const std::vector<int32_t>& bp, const std::vector<int32_t>& cp) {
    const FlipCounts fc = count_flips(set.mc_answer, bp, cp);
    s.set(m.accuracy, accuracy(cp, set.mc_answer));
    s.set(m.base_accuracy, accuracy(bp, set.mc_answer));
    s.set(m.flips_correct_to_wrong, static_cast<double>(fc.correct_to_wrong));
    s.set(m.flips_wrong_to_correct, static_cast<double>(fc.wrong_to_correct));
    s.set(m.flips_total, static_cast<double>(fc.total()));
    s.set(m.rate_correct_to_wrong, fc.rate(fc.correct_to_wrong));
    s.set(m.rate_wrong_to_correct, fc.rate(fc.wrong_to_correct));
    s.set(m.rate_total, fc.rate(fc.total()));
  };
  flips(kMcBySum, base_sum, c.pred_sum);
  flips(kMcByMean, base_mean, c.pred_mean);
  return c;
}

}  // namespace divprune

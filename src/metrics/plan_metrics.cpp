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

double perplexity_of(const std::vector<double>& nll) {
  if (nll.empty()) return std::nan("");
  double s = 0.0;
  for (double v : nll) s += v;
  return std::exp(s / static_cast<double>(nll.size()));
}

}  // namespace

std::vector<SummaryEntry> summarize_base(const EvalSet& set, const BaseOutputs& base) {
  std::vector<SummaryEntry> out;
  out.push_back({"perplexity", perplexity_of(base.nll), "1", "exp(mean NLL) of the base model over the perplexity tokens"});
  out.push_back({"tokens", static_cast<double>(base.nll.size()), "tokens", "scored perplexity tokens"});
  const int64_t n = set.continuation;
  double agree = 0.0;
  for (size_t p = 0; p < set.prompts.size(); ++p)
    agree += static_cast<double>(
        divergent_tokens(std::span<const int32_t>(base.continuation.data() + p * n, static_cast<size_t>(n)),
                         std::span<const int32_t>(base.tf_argmax.data() + p * n, static_cast<size_t>(n)))
            .fdt);
  out.push_back({"tf_fdt_mean", set.prompts.empty() ? std::nan("") : agree / static_cast<double>(set.prompts.size()),
                 "tokens",
                 "mean FDT of the base model's teacher-forced argmax against its own incremental greedy continuation "
                 "(N unless near-ties resolve differently in the two computations)"});
  std::vector<int32_t> by_sum, by_mean;
  mc_predictions(set, base.mc_logprob, by_sum, by_mean);
  out.push_back({"mc_accuracy_sum", accuracy(by_sum, set.mc_answer), "1",
                 "multiple-choice accuracy, choosing by the sum of the choice tokens' log-probs"});
  out.push_back({"mc_accuracy_mean", accuracy(by_mean, set.mc_answer), "1",
                 "multiple-choice accuracy, choosing by the mean log-prob per choice token (length-normalised)"});
  out.push_back({"mc_items", static_cast<double>(set.mc_answer.size()), "items", "multiple-choice items"});
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

  auto& s = c.summary;
  const double base_ppl = perplexity_of(base.nll);
  const double ppl = perplexity_of(plan.nll);
  s.push_back({"perplexity", ppl, "1", "exp(mean NLL) over the perplexity tokens"});
  s.push_back({"perplexity_ratio", ppl / base_ppl, "1", "perplexity / base perplexity"});
  s.push_back({"tokens", static_cast<double>(tokens), "tokens", "scored perplexity tokens"});
  const SampleSummary kl = summarize(plan.kl);
  s.push_back({"kl_mean", kl.mean, "nats", "mean per-token KL(base || compressed) over the kept tokens"});
  s.push_back({"kl_stderr", kl.stderr_, "nats", "standard error of kl_mean (sample std / sqrt(n))"});
  s.push_back({"kl_std", kl.std, "nats", "sample standard deviation of the per-token KL"});
  s.push_back({"kl_tokens", static_cast<double>(kl.count), "tokens", "tokens with stored base log-probs (KL sample size)"});
  for (size_t i = 0; i < kPercentileLevels.size(); ++i)
    s.push_back({"kl_" + percentile_name(kPercentileLevels[i]), kl.percentiles[i], "nats",
                 fmt::format("{}th percentile of the per-token KL (linear interpolation)", kPercentileLevels[i])});
  s.push_back({"same_top1_rate", tokens ? static_cast<double>(same) / static_cast<double>(tokens) : std::nan(""), "1",
               "share of perplexity tokens whose argmax equals the base argmax (ties -> lower id)"});
  const SampleSummary dp = summarize(c.dp);
  s.push_back({"dp_mean", dp.mean, "probability", "mean of p_c(correct token) - p_b(correct token)"});
  s.push_back({"dp_rms", dp.rms, "probability", "root mean square of the per-token delta p"});
  s.push_back({"dp_stderr", dp.stderr_, "probability", "standard error of dp_mean"});
  std::vector<double> fdt(c.fdt.begin(), c.fdt.end());
  const SampleSummary f = summarize(fdt);
  const SampleSummary sd = summarize(c.sdt);
  int64_t reach = 0;
  for (int32_t v : c.fdt) reach += v == n;
  s.push_back({"fdt_mean", f.mean, "tokens", "mean first divergent token position (N when none diverges)"});
  s.push_back({"fdt_median", f.percentiles[5], "tokens", "median first divergent token position"});
  s.push_back({"fdt_reach_n_rate", set.prompts.empty() ? std::nan("") : static_cast<double>(reach) / static_cast<double>(set.prompts.size()),
               "1", "share of prompts with no divergent token (FDT = N)"});
  s.push_back({"sdt_mean", sd.mean, "1", "mean share of divergent tokens per prompt"});
  s.push_back({"sdt_median", sd.percentiles[5], "1", "median share of divergent tokens per prompt"});
  s.push_back({"prompts", static_cast<double>(set.prompts.size()), "prompts", "greedy-continuation prompts"});
  s.push_back({"continuation_tokens", static_cast<double>(n), "tokens", "N: base greedy tokens per prompt"});
  s.push_back({"mc_items", static_cast<double>(set.mc_answer.size()), "items", "multiple-choice items"});
  auto flips = [&](const char* key, const char* how, const std::vector<int32_t>& bp, const std::vector<int32_t>& cp) {
    const FlipCounts fc = count_flips(set.mc_answer, bp, cp);
    s.push_back({fmt::format("mc_accuracy_{}", key), accuracy(cp, set.mc_answer), "1",
                 fmt::format("multiple-choice accuracy choosing by {}", how)});
    s.push_back({fmt::format("mc_base_accuracy_{}", key), accuracy(bp, set.mc_answer), "1",
                 fmt::format("base model's multiple-choice accuracy choosing by {}", how)});
    s.push_back({fmt::format("mc_flips_{}_correct_to_wrong", key), static_cast<double>(fc.correct_to_wrong), "items",
                 fmt::format("items the base got right and the compressed model wrong ({})", how)});
    s.push_back({fmt::format("mc_flips_{}_wrong_to_correct", key), static_cast<double>(fc.wrong_to_correct), "items",
                 fmt::format("items the base got wrong and the compressed model right ({})", how)});
    s.push_back({fmt::format("mc_flips_{}_total", key), static_cast<double>(fc.total()), "items",
                 fmt::format("flips in either direction ({})", how)});
    s.push_back({fmt::format("mc_flip_rate_{}_correct_to_wrong", key), fc.rate(fc.correct_to_wrong), "1",
                 "correct-to-wrong flips / items"});
    s.push_back({fmt::format("mc_flip_rate_{}_wrong_to_correct", key), fc.rate(fc.wrong_to_correct), "1",
                 "wrong-to-correct flips / items"});
    s.push_back({fmt::format("mc_flip_rate_{}_total", key), fc.rate(fc.total()), "1", "flips / items"});
  };
  flips("sum", "the sum of the choice tokens' log-probs", base_sum, c.pred_sum);
  flips("mean", "the mean log-prob per choice token (length-normalised)", base_mean, c.pred_mean);
  return c;
}

}  // namespace divprune

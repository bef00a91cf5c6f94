// Divergence metrics on hand-made arrays: every statistic equals its direct formula written out here, and the
// fp16 storage of base log-probs costs a KL below the documented bound (src/archive/SCHEMA.md).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/communicator.hpp"
#include "core/dtype.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "metrics/base_logprobs.hpp"
#include "metrics/divergence.hpp"
#include "metrics/plan_metrics.hpp"

namespace divprune {
namespace {

// Random logits (n, v) with a spread like a language model's (entropy of a few nats).
std::vector<float> random_logits(int64_t n, int64_t v, uint32_t seed, float scale = 2.5f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(static_cast<size_t>(n * v));
  for (auto& e : x) e = normal(rng);
  return x;
}

std::vector<double> row_log_softmax(const float* row, int64_t v) {
  double m = -1e300;
  for (int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(row[j]));
  double s = 0.0;
  for (int64_t j = 0; j < v; ++j) s += std::exp(row[j] - m);
  std::vector<double> out(static_cast<size_t>(v));
  for (int64_t j = 0; j < v; ++j) out[static_cast<size_t>(j)] = row[j] - m - std::log(s);
  return out;
}

double lse_of(const float* row, int64_t v) {
  double m = -1e300;
  for (int64_t j = 0; j < v; ++j) m = std::max(m, static_cast<double>(row[j]));
  double s = 0.0;
  for (int64_t j = 0; j < v; ++j) s += std::exp(row[j] - m);
  return m + std::log(s);
}

Tensor host_matrix(const std::vector<float>& values, int64_t n, int64_t v) {
  Tensor t = host_tensor({n, v});
  std::copy(values.begin(), values.end(), t.data_as<float>());
  return t;
}

TEST(KlPartials, WholeVocabularyEqualsDirectFormula) {
  const int64_t n = 5, v = 1000;
  const auto base_logits = random_logits(n, v, 1), comp_logits = random_logits(n, v, 2);
  std::vector<float> base_logp(static_cast<size_t>(n * v));
  std::vector<double> log_z(static_cast<size_t>(n));
  std::vector<double> expected(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto lp = row_log_softmax(base_logits.data() + i * v, v);
    const auto lq = row_log_softmax(comp_logits.data() + i * v, v);
    for (int64_t j = 0; j < v; ++j) base_logp[static_cast<size_t>(i * v + j)] = static_cast<float>(lp[static_cast<size_t>(j)]);
    std::vector<double> lp_f(lp.size());
    for (int64_t j = 0; j < v; ++j) lp_f[static_cast<size_t>(j)] = base_logp[static_cast<size_t>(i * v + j)];
    expected[static_cast<size_t>(i)] = kl_divergence(lp_f, lq);
    // Direct formula, written out.
    double kl = 0.0;
    for (int64_t j = 0; j < v; ++j) kl += std::exp(lp_f[static_cast<size_t>(j)]) * (lp_f[static_cast<size_t>(j)] - lq[static_cast<size_t>(j)]);
    EXPECT_NEAR(kl, expected[static_cast<size_t>(i)], 1e-12);
    log_z[static_cast<size_t>(i)] = lse_of(comp_logits.data() + i * v, v);
  }
  CpuBackend backend;
  SoloCommunicator solo;
  const std::vector<double> zero(static_cast<size_t>(n), 0.0);
  const auto kl = distributed_kl(backend, solo, host_matrix(comp_logits, n, v), base_logp, zero, log_z, false);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_GT(expected[static_cast<size_t>(i)], 0.05);
    EXPECT_NEAR(kl[static_cast<size_t>(i)], expected[static_cast<size_t>(i)], 1e-9 * expected[static_cast<size_t>(i)] + 1e-12);
  }
}

TEST(KlPartials, VocabSlicesSumToTheWhole) {
  // Two "ranks" holding columns [0, 400) and [400, 1000): the partials add up to the whole-vocabulary KL.
  const int64_t n = 3, v = 1000, split = 400;
  const auto base_logits = random_logits(n, v, 3), comp_logits = random_logits(n, v, 4);
  std::vector<float> base_logp(static_cast<size_t>(n * v));
  std::vector<double> log_z(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto lp = row_log_softmax(base_logits.data() + i * v, v);
    for (int64_t j = 0; j < v; ++j) base_logp[static_cast<size_t>(i * v + j)] = static_cast<float>(lp[static_cast<size_t>(j)]);
    log_z[static_cast<size_t>(i)] = lse_of(comp_logits.data() + i * v, v);
  }
  auto slice = [&](const std::vector<float>& m, int64_t b, int64_t e) {
    std::vector<float> out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), m.begin() + i * v + b, m.begin() + i * v + e);
    return out;
  };
  // The same base distribution given with a per-row offset on the two slices: values + 0.75, offset 0.75.
  std::vector<float> shifted(base_logp.size());
  for (size_t k = 0; k < shifted.size(); ++k) shifted[k] = base_logp[k] + 0.75f;
  const std::vector<double> offset(static_cast<size_t>(n), 0.75);
  KlPartials whole, a, b;
  kl_partials_host(comp_logits.data(), n, v, base_logp, std::vector<double>(n, 0.0), log_z, whole);
  const auto la = slice(comp_logits, 0, split), lb = slice(comp_logits, split, v);
  kl_partials_host(la.data(), n, split, slice(shifted, 0, split), offset, log_z, a);
  kl_partials_host(lb.data(), n, v - split, slice(shifted, split, v), offset, log_z, b);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_NEAR(a.kl[i] + b.kl[i], whole.kl[i], 1e-6 * whole.kl[i]);
    EXPECT_NEAR(whole.model_total[i], 1.0, 1e-12);
    EXPECT_NEAR(a.model_total[i] + b.model_total[i], 1.0, 1e-12);
    EXPECT_NEAR(a.base_mass[i] + b.base_mass[i], 1.0, 1e-6);
  }
}

TEST(KlPartials, RoundingOfLogZIsRemoved) {
  // A log Z off by 1e-6 (as float partial sums can leave it) changes nothing: the model's total mass,
  // summed in double, renormalises log p_c.
  const int64_t n = 2, v = 3000;
  const auto base_logits = random_logits(n, v, 11), comp_logits = random_logits(n, v, 12);
  std::vector<float> base_logp(static_cast<size_t>(n * v));
  std::vector<double> exact(n), off(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto lp = row_log_softmax(base_logits.data() + i * v, v);
    for (int64_t j = 0; j < v; ++j) base_logp[static_cast<size_t>(i * v + j)] = static_cast<float>(lp[static_cast<size_t>(j)]);
    exact[static_cast<size_t>(i)] = lse_of(comp_logits.data() + i * v, v);
    off[static_cast<size_t>(i)] = exact[static_cast<size_t>(i)] + 1e-6;
  }
  CpuBackend backend;
  SoloCommunicator solo;
  const std::vector<double> zero(static_cast<size_t>(n), 0.0);
  const Tensor logits = host_matrix(comp_logits, n, v);
  const auto a = distributed_kl(backend, solo, logits, base_logp, zero, exact, false);
  const auto b = distributed_kl(backend, solo, logits, base_logp, zero, off, false);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
}

TEST(KlPartials, TopKIsTheCoarseGrainedKl) {
  // Base stored as its top-k only: KL of the distributions over {top-k tokens, rest}, a lower bound of the KL.
  const int64_t n = 4, v = 500, k = 20;
  const auto base_logits = random_logits(n, v, 5), comp_logits = random_logits(n, v, 6);
  std::vector<double> log_z(static_cast<size_t>(n)), base_lz(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    log_z[static_cast<size_t>(i)] = lse_of(comp_logits.data() + i * v, v);
    base_lz[static_cast<size_t>(i)] = lse_of(base_logits.data() + i * v, v);
  }
  std::vector<int32_t> ids;
  std::vector<uint16_t> bits;
  encode_topk(base_logits, n, v, base_lz, k, ids, bits);
  BaseLogprobSlices store(LogprobMode::TopK, v, Range{0, v});
  store.add_topk_chunk(ids, bits, n, k);
  std::vector<float> values;
  std::vector<double> offset;
  store.dense(0, values, offset);
  CpuBackend backend;
  SoloCommunicator solo;
  const auto kl = distributed_kl(backend, solo, host_matrix(comp_logits, n, v), values, offset, log_z, true);
  for (int64_t i = 0; i < n; ++i) {
    const auto lq = row_log_softmax(comp_logits.data() + i * v, v);
    const auto lp = row_log_softmax(base_logits.data() + i * v, v);
    double direct = 0.0, pb_top = 0.0, pc_top = 0.0;
    for (int64_t r = 0; r < k; ++r) {
      const int32_t id = ids[static_cast<size_t>(i * k + r)];
      // Ordered by decreasing probability, ties toward the lower id.
      if (r > 0) {
        const int32_t prev = ids[static_cast<size_t>(i * k + r - 1)];
        EXPECT_TRUE(lp[prev] > lp[id] || (lp[prev] == lp[id] && prev < id));
      }
      const double lb = half_to_float(bits[static_cast<size_t>(i * k + r)]);
      direct += std::exp(lb) * (lb - lq[id]);
      pb_top += std::exp(lb);
      pc_top += std::exp(lq[id]);
    }
    direct += (1 - pb_top) * (std::log(1 - pb_top) - std::log(1 - pc_top));
    EXPECT_NEAR(kl[static_cast<size_t>(i)], direct, 1e-9 * std::abs(direct) + 1e-12);
    EXPECT_LE(kl[static_cast<size_t>(i)], kl_divergence(lp, lq) + 1e-3);  // coarse-graining (fp16 aside)
  }
}

// ulp of an fp16 value's magnitude: the spacing of fp16 numbers around x.
double half_ulp(double x) {
  const double a = std::abs(x);
  if (a < std::ldexp(1.0, -14)) return std::ldexp(1.0, -24);
  return std::ldexp(1.0, static_cast<int>(std::floor(std::log2(a))) - 10);
}

TEST(Fp16Storage, SelfKlBelowTheDocumentedBound) {
  // Log-probs of a 32000-token vocabulary, stored as fp16 of log p - shift (shift = -entropy) and renormalised
  // on reading. With |δ_v| <= ulp(x_v)/2 the rounding error of each stored x_v, KL(stored || exact) is, to second
  // order, (1/2) Var_p(δ) <= (1/8) sum_v p_v ulp(x_v)^2 per token; the mean over tokens stays below 1e-6 nats.
  // Two spreads: entropy ~8 nats (flat) and ~2.6 nats (peaked, like a trained model on easy text).
  for (const float scale : {2.0f, 5.0f}) {
    const int64_t n = 48, v = 32000;
    const auto logits = random_logits(n, v, 7, scale);
    std::vector<double> log_z(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) log_z[static_cast<size_t>(i)] = lse_of(logits.data() + i * v, v);
    std::vector<double> shift;
    const auto bits = encode_logprobs(logits, n, v, log_z, shift);
    const auto lse = half_row_lse(bits, n, v);
    BaseLogprobSlices store(LogprobMode::Full, v, Range{0, v});
    store.add_full_chunk(bits, n, lse);
    std::vector<float> values;
    std::vector<double> offset;
    store.dense(0, values, offset);
    CpuBackend backend;
    SoloCommunicator solo;
    const auto kl = distributed_kl(backend, solo, host_matrix(logits, n, v), values, offset, log_z, false);
    double mean = 0.0, entropy = 0.0, mean_bound = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      double bound = 0.0, renorm = 0.0, h = 0.0;
      for (int64_t j = 0; j < v; ++j) {
        const double x = half_to_float(bits[static_cast<size_t>(i * v + j)]);
        const double lp = x - offset[static_cast<size_t>(i)];
        bound += std::exp(lp) * half_ulp(x) * half_ulp(x) / 8.0;
        renorm += std::exp(lp);
        h -= std::exp(lp) * lp;
      }
      // The shift is minus the entropy of the exact row.
      EXPECT_NEAR(shift[static_cast<size_t>(i)], -h, 1e-3);
      EXPECT_NEAR(renorm, 1.0, 1e-6);
      EXPECT_GE(kl[static_cast<size_t>(i)], -1e-12);
      EXPECT_LE(kl[static_cast<size_t>(i)], bound) << "row " << i;
      mean += kl[static_cast<size_t>(i)] / n;
      mean_bound += bound / n;
      entropy += h / n;
    }
    EXPECT_LE(mean, 1e-6);
    std::printf("fp16 self-KL: mean %.3e nats (bound %.3e) over %ld rows of entropy %.2f nats\n", mean, mean_bound,
                static_cast<long>(n), entropy);
  }
}

TEST(DivergentTokens, FdtAndSdtFollowTheirDefinition) {
  const std::vector<int32_t> ref = {5, 6, 7, 8, 9, 10};
  EXPECT_EQ(divergent_tokens(ref, ref).fdt, 6);
  EXPECT_EQ(divergent_tokens(ref, ref).sdt, 0.0);
  const std::vector<int32_t> a = {5, 6, 1, 8, 2, 10};
  EXPECT_EQ(divergent_tokens(ref, a).fdt, 2);
  EXPECT_DOUBLE_EQ(divergent_tokens(ref, a).sdt, 2.0 / 6.0);
  const std::vector<int32_t> b = {0, 0, 0, 0, 0, 0};
  EXPECT_EQ(divergent_tokens(ref, b).fdt, 0);
  EXPECT_DOUBLE_EQ(divergent_tokens(ref, b).sdt, 1.0);
  // Random sequences against the formula written out.
  std::mt19937 rng(9);
  for (int trial = 0; trial < 100; ++trial) {
    std::vector<int32_t> r(12), c(12);
    for (size_t i = 0; i < r.size(); ++i) {
      r[i] = static_cast<int32_t>(rng() % 3);
      c[i] = static_cast<int32_t>(rng() % 3);
    }
    int64_t fdt = 12, diff = 0;
    for (int64_t i = 11; i >= 0; --i)
      if (r[i] != c[i]) fdt = i;
    for (size_t i = 0; i < r.size(); ++i) diff += r[i] != c[i];
    EXPECT_EQ(divergent_tokens(r, c).fdt, fdt);
    EXPECT_DOUBLE_EQ(divergent_tokens(r, c).sdt, diff / 12.0);
  }
}

TEST(MultipleChoice, TiesGoToTheLowerIndexAndFlipsCount) {
  EXPECT_EQ(choose(std::vector<double>{-1.0, -0.5, -0.5}), 1);
  EXPECT_EQ(choose(std::vector<double>{-2.0, -3.0}), 0);
  const std::vector<int32_t> answer = {0, 1, 2, 3, 0, 1};
  const std::vector<int32_t> base = {0, 1, 0, 0, 0, 2};   // right, right, wrong, wrong, right, wrong
  const std::vector<int32_t> comp = {0, 2, 2, 1, 1, 1};   // right, wrong, right, wrong, wrong, right
  const FlipCounts f = count_flips(answer, base, comp);
  EXPECT_EQ(f.items, 6);
  EXPECT_EQ(f.base_correct, 3);
  EXPECT_EQ(f.correct, 3);
  EXPECT_EQ(f.correct_to_wrong, 2);
  EXPECT_EQ(f.wrong_to_correct, 2);
  EXPECT_EQ(f.total(), 4);
  EXPECT_DOUBLE_EQ(f.rate(f.total()), 4.0 / 6.0);
  EXPECT_EQ(count_flips(answer, base, base).total(), 0);
}

TEST(Summaries, PercentilesInterpolateLikeNumpy) {
  const std::vector<double> x = {3, 1, 4, 1, 5, 9, 2, 6};  // sorted: 1 1 2 3 4 5 6 9
  const SampleSummary s = summarize(x);
  EXPECT_EQ(s.count, 8);
  EXPECT_DOUBLE_EQ(s.mean, 31.0 / 8.0);
  double dev = 0;
  for (double v : x) dev += (v - 31.0 / 8.0) * (v - 31.0 / 8.0);
  EXPECT_NEAR(s.std, std::sqrt(dev / 7.0), 1e-12);
  EXPECT_NEAR(s.stderr_, std::sqrt(dev / 7.0) / std::sqrt(8.0), 1e-12);
  EXPECT_DOUBLE_EQ(s.percentiles[0], 9.0);    // max
  EXPECT_DOUBLE_EQ(s.percentiles[10], 1.0);   // min
  EXPECT_DOUBLE_EQ(s.percentiles[5], 3.5);    // median: rank 3.5 between 3 and 4
  // numpy.percentile(x, 90) = 6 + 0.3 * (9 - 6) (rank 6.3)
  EXPECT_NEAR(s.percentiles[4], 6.9, 1e-12);
  // numpy.percentile(x, 99.9) = 6 + 0.993 * 3
  EXPECT_NEAR(s.percentiles[1], 6.0 + 0.993 * 3.0, 1e-12);
  EXPECT_EQ(percentile_name(99.9), "p99_9");
  EXPECT_EQ(percentile_name(0.1), "p0_1");
  EXPECT_EQ(percentile_name(100), "p100");
}

TEST(CompareToBase, PerTokenAndPerPromptStatisticsMatchTheirFormulas) {
  EvalSet set;
  set.ctx = 3;
  set.chunks = {{10, 11, 12}, {13, 14}};
  set.kept_chunks = 1;
  set.prompts = {{1, 2}, {3}};
  set.continuation = 4;
  set.mc_context = {{5}, {6}};
  set.mc_choices = {{{7}, {8, 9}}, {{7}, {8}, {9}}};
  set.mc_answer = {1, 2};
  BaseOutputs base;
  base.nll = {0.1, 2.0, 3.0, 0.5, 1.0};
  base.argmax = {11, 5, 12, 13, 9};
  base.continuation = {4, 4, 5, 6, /**/ 7, 8, 9, 9};
  base.tf_argmax = base.continuation;
  base.mc_logprob = {-1.0, -1.5, /**/ -2.0, -1.0, -1.0};  // sum picks 0 / 1 (tie -> lower), mean picks 1 / 1
  PlanOutputs plan;
  plan.nll = {0.2, 1.5, 3.0, 0.5, 2.0};
  plan.argmax = {11, 6, 12, 14, 9};
  plan.kl = {0.01, 0.02, 0.04};
  plan.tf_argmax = {4, 4, 5, 6, /**/ 7, 0, 9, 1};
  plan.mc_logprob = {-2.0, -1.8, /**/ -3.0, -2.0, -0.5};  // sum picks 1 / 2
  const PlanComparison c = compare_to_base(set, base, plan);
  EXPECT_EQ(c.same_top1, (std::vector<uint8_t>{1, 0, 1, 0, 1}));
  for (size_t t = 0; t < 5; ++t) EXPECT_DOUBLE_EQ(c.dp[t], std::exp(-plan.nll[t]) - std::exp(-base.nll[t]));
  EXPECT_EQ(c.fdt, (std::vector<int32_t>{4, 1}));
  EXPECT_EQ(c.sdt, (std::vector<double>{0.0, 0.5}));
  EXPECT_EQ(c.pred_sum, (std::vector<int32_t>{1, 2}));
  const Summary& s = c.summary;
  EXPECT_NEAR(s[SummaryMetric::Perplexity], std::exp((0.2 + 1.5 + 3.0 + 0.5 + 2.0) / 5), 1e-12);
  EXPECT_NEAR(s[SummaryMetric::KlMean], 0.07 / 3, 1e-15);
  EXPECT_NEAR(s[SummaryMetric::KlP100], 0.04, 1e-15);
  EXPECT_NEAR(s[SummaryMetric::KlP50], 0.02, 1e-15);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::SameTop1Rate], 0.6);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::FdtMean], 2.5);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::FdtReachNRate], 0.5);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::SdtMean], 0.25);
  // Base by sum: item 0 -> choice 0 (wrong), item 1 -> choice 1 (tie of -1.0 and -1.0, lower index; wrong).
  // Compressed by sum: 1 (right), 2 (right): two wrong -> correct flips.
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipsSumWrongToCorrect], 2);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipsSumCorrectToWrong], 0);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipsSumTotal], 2);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipRateSumTotal], 1.0);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McAccuracySum], 1.0);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McBaseAccuracySum], 0.0);
  // By mean: base item 0: -1.0 vs -0.75 -> 1 (right); item 1 -> 1 (tie, wrong). Compressed: -2 vs -0.9 -> 1
  // (right), -3, -2, -0.5 -> 2 (right): one wrong -> correct flip.
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipsMeanWrongToCorrect], 1);
  EXPECT_DOUBLE_EQ(s[SummaryMetric::McFlipsMeanTotal], 1);
  // The base against itself.
  PlanOutputs same;
  same.nll = base.nll;
  same.argmax = base.argmax;
  same.kl = {0, 0, 0};
  same.tf_argmax = base.continuation;
  same.mc_logprob = base.mc_logprob;
  const PlanComparison z = compare_to_base(set, base, same);
  const Summary& t = z.summary;
  EXPECT_EQ(t[SummaryMetric::SameTop1Rate], 1.0);
  EXPECT_EQ(t[SummaryMetric::FdtMean], 4.0);
  EXPECT_EQ(t[SummaryMetric::SdtMean], 0.0);
  EXPECT_EQ(t[SummaryMetric::McFlipsSumTotal], 0.0);
  EXPECT_EQ(t[SummaryMetric::McFlipsMeanTotal], 0.0);
  EXPECT_EQ(t[SummaryMetric::DpRms], 0.0);
}

TEST(PlanOutputs, SerialiseRoundTrip) {
  PlanOutputs o;
  o.nll = {1, 2, 3};
  o.argmax = {4, 5, 6};
  o.kl = {0.5};
  o.tf_argmax = {7, 8};
  o.mc_logprob = {-1, -2};
  o.seconds = 1.5;
  const PlanOutputs r = deserialize_plan_outputs(serialize(o));
  EXPECT_EQ(r.nll, o.nll);
  EXPECT_EQ(r.argmax, o.argmax);
  EXPECT_EQ(r.kl, o.kl);
  EXPECT_EQ(r.tf_argmax, o.tf_argmax);
  EXPECT_EQ(r.mc_logprob, o.mc_logprob);
  EXPECT_EQ(r.seconds, o.seconds);
}

}  // namespace
}  // namespace divprune

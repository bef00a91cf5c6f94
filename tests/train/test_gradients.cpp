// Every op's backward and the whole model's gradient against central finite differences, in double (the same
// templated code training runs in float), on small shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "tests/train/tiny_model.hpp"
#include "train/ops.hpp"
#include "train/params.hpp"
#include "train/train_model.hpp"

namespace divprune::train {
namespace {

std::vector<double> randn(size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(n);
  for (double& x : v) x = normal(rng);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences of f at every entry of x against `grad`; returns the largest relative error.
double max_gradient_error(std::vector<double>& x, const std::vector<double>& grad, const std::function<double()>& f,
                          double h = 1e-5) {
  EXPECT_EQ(x.size(), grad.size());
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double fp = f();
    x[i] = saved - h;
    const double fm = f();
    x[i] = saved;
    const double fd = (fp - fm) / (2.0 * h);
    worst = std::max(worst, std::abs(fd - grad[i]) / std::max(1.0, std::abs(fd)));
  }
  return worst;
}

constexpr double kTol = 1e-7;  // central differences with h = 1e-5 in double: O(h^2) + 1e-16 / h

TEST(TrainOps, LinearGradient) {
  const int64_t n = 3, in = 5, out = 4;
  auto x = randn(n * in, 1), w = randn(out * in, 2), dy = randn(n * out, 3);
  std::vector<double> y(n * out), dx(n * in), dw(out * in, 0.0);
  auto f = [&] {
    linear_forward(x.data(), w.data(), n, in, out, y.data());
    return dot(y, dy);
  };
  linear_backward(x.data(), w.data(), dy.data(), n, in, out, dx.data(), false, dw.data());
  EXPECT_LT(max_gradient_error(x, dx, f), kTol);
  EXPECT_LT(max_gradient_error(w, dw, f), kTol);
}

TEST(TrainOps, RmsNormGradient) {
  const int64_t n = 3, c = 6;
  auto x = randn(n * c, 4), w = randn(c, 5), dy = randn(n * c, 6);
  std::vector<double> y(n * c), r(n), dx(n * c, 0.0), dw(c, 0.0);
  auto f = [&] {
    rmsnorm_forward(x.data(), w.data(), 1e-5f, n, c, y.data(), r.data());
    return dot(y, dy);
  };
  f();
  rmsnorm_backward(x.data(), w.data(), r.data(), dy.data(), n, c, dx.data(), dw.data());
  EXPECT_LT(max_gradient_error(x, dx, f), kTol);
  EXPECT_LT(max_gradient_error(w, dw, f), kTol);
}

TEST(TrainOps, RopeGradient) {
  const int64_t n = 4, heads = 2, d = 8;
  auto x = randn(n * heads * d, 7), dy = randn(n * heads * d, 8);
  auto f = [&] {
    std::vector<double> y = x;
    rope_apply(y.data(), n, heads, d, 10000.0f, false);
    return dot(y, dy);
  };
  std::vector<double> dx = dy;
  rope_apply(dx.data(), n, heads, d, 10000.0f, true);
  EXPECT_LT(max_gradient_error(x, dx, f), kTol);
}

TEST(TrainOps, CausalGqaAttentionGradient) {
  const int64_t n = 5, heads = 4, kv_heads = 2, d = 4;  // two query heads per KV head
  auto q = randn(n * heads * d, 9), k = randn(n * kv_heads * d, 10), v = randn(n * kv_heads * d, 11);
  auto dy = randn(n * heads * d, 12);
  std::vector<double> out(n * heads * d), probs(heads * n * n);
  auto f = [&] {
    attention_forward(q.data(), k.data(), v.data(), n, heads, kv_heads, d, out.data(), probs.data());
    return dot(out, dy);
  };
  f();
  std::vector<double> dq(q.size()), dk(k.size(), 0.0), dv(v.size(), 0.0), scratch;
  attention_backward(q.data(), k.data(), v.data(), probs.data(), dy.data(), n, heads, kv_heads, d, dq.data(),
                     dk.data(), dv.data(), scratch);
  EXPECT_LT(max_gradient_error(q, dq, f), kTol);
  EXPECT_LT(max_gradient_error(k, dk, f), kTol);
  EXPECT_LT(max_gradient_error(v, dv, f), kTol);
  // Causality: the output of position 0 does not depend on later keys.
  EXPECT_DOUBLE_EQ(probs[1], 0.0);
}

TEST(TrainOps, SwigluGradient) {
  const int64_t count = 12;
  auto g = randn(count, 13, 3.0), u = randn(count, 14), dy = randn(count, 15);
  std::vector<double> out(count), dg(count), du(count);
  auto f = [&] {
    swiglu_forward(g.data(), u.data(), count, out.data());
    return dot(out, dy);
  };
  swiglu_backward(g.data(), u.data(), dy.data(), count, dg.data(), du.data());
  EXPECT_LT(max_gradient_error(g, dg, f), kTol);
  EXPECT_LT(max_gradient_error(u, du, f), kTol);
}

TEST(TrainOps, CrossEntropyGradient) {
  const int64_t n = 3, v = 300;  // more than one 256-column block
  auto logits = randn(n * v, 16, 2.0);
  const std::vector<int32_t> targets = {5, 299, 0};
  std::vector<double> dlogits(n * v);
  const double loss = cross_entropy(logits.data(), targets, v, 1.0, dlogits.data());
  // Against a direct log-softmax.
  double expected = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double z = 0.0;
    for (int64_t j = 0; j < v; ++j) z += std::exp(logits[i * v + j]);
    expected += std::log(z) - logits[i * v + targets[i]];
  }
  EXPECT_NEAR(loss, expected, 1e-12 * std::abs(expected));
  auto f = [&] { return cross_entropy<double>(logits.data(), targets, v, 1.0, nullptr); };
  EXPECT_LT(max_gradient_error(logits, dlogits, f), kTol);
}

TEST(TrainOps, EmbeddingGradient) {
  const int64_t rows = 5, c = 3;
  auto table = randn(rows * c, 17);
  const std::vector<int32_t> ids = {1, 3, 1, 4};
  auto dy = randn(ids.size() * c, 18);
  std::vector<double> x(ids.size() * c), dtable(rows * c, 0.0);
  auto f = [&] {
    embedding_forward(table.data(), ids, c, x.data());
    return dot(x, dy);
  };
  embedding_backward(ids, c, dy.data(), dtable.data());
  EXPECT_LT(max_gradient_error(table, dtable, f), kTol);
}

// The whole model (embedding, 2 layers of GQA attention + SwiGLU, final norm, lm_head, mean cross-entropy):
// every parameter's gradient against central differences.
void check_model_gradient(const ModelConfig& config, const std::vector<bool>& removed) {
  const HostWeights weights = test::tiny_weights(config);
  const ParamLayout layout = make_param_layout(config, removed);
  const std::vector<float> flat = pack_params(layout, weights);
  std::vector<double> params(flat.begin(), flat.end());
  const std::vector<int32_t> tokens = test::random_tokens(8, config.vocab_size, 21);
  const double scale = 1.0 / 7.0;  // mean over the 7 targets
  TrainModel<double> model(layout);
  std::vector<double> grad(params.size(), 0.0);
  model.forward_backward(tokens, params, grad, scale);
  auto f = [&] { return model.loss(tokens, params) * scale; };
  EXPECT_LT(max_gradient_error(params, grad, f), kTol) << layout.total << " parameters";

  // The float instantiation (what training runs) agrees with the double one to float accuracy.
  TrainModel<float> model_f(layout);
  std::vector<float> grad_f(flat.size(), 0.0f);
  model_f.forward_backward(tokens, flat, grad_f, static_cast<float>(scale));
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < grad.size(); ++i) {
    diff += (grad_f[i] - grad[i]) * (grad_f[i] - grad[i]);
    norm += grad[i] * grad[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5);
}

TEST(TrainModelGradient, TinyGqaModel) { check_model_gradient(test::tiny_config(), {}); }
TEST(TrainModelGradient, TiedEmbeddings) { check_model_gradient(test::tiny_config(true), {}); }
TEST(TrainModelGradient, RemovedLayerIsSkipped) {
  const ModelConfig config = test::tiny_config();
  const ParamLayout layout = make_param_layout(config, {true, false});
  EXPECT_TRUE(layout.layers[0].removed);
  EXPECT_EQ(layout.layers[0].attn_norm, -1);
  EXPECT_EQ(make_param_layout(config, {}).total - layout.total,
            2 * config.hidden_size + config.layer_linear_parameters());
  check_model_gradient(config, {true, false});
}

}  // namespace
}  // namespace divprune::train

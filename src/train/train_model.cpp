#include "train/train_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/errors.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "train/ops.hpp"

namespace divprune::train {

template <class T>
TrainModel<T>::TrainModel(ParamLayout layout) : layout_(std::move(layout)) {
  acts_.resize(layout_.layers.size());
}

template <class T>
void TrainModel<T>::ensure(int64_t n) {
  if (rows_ == n) return;
  const ModelConfig& c = layout_.config;
  const int64_t C = c.hidden_size, F = c.intermediate_size, H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim;
  auto size = [](std::vector<T>& v, int64_t count) { v.assign(static_cast<size_t>(count), T(0)); };
  for (size_t l = 0; l < acts_.size(); ++l) {
    if (layout_.layers[l].removed) continue;
    LayerActs& a = acts_[l];
    size(a.x, n * C);
    size(a.r1, n);
    size(a.n1, n * C);
    size(a.q, n * H * D);
    size(a.k, n * Hkv * D);
    size(a.v, n * Hkv * D);
    size(a.probs, H * n * n);
    size(a.attn, n * H * D);
    size(a.mid, n * C);
    size(a.r2, n);
    size(a.n2, n * C);
    size(a.gate, n * F);
    size(a.up, n * F);
    size(a.act, n * F);
  }
  size(x_final_, n * C);
  size(r_final_, n);
  size(n_final_, n * C);
  size(logits_, n * c.vocab_size);
  size(dx_, n * C);
  size(dnorm_, n * C);
  size(dq_, n * H * D);
  size(dk_, n * Hkv * D);
  size(dv_, n * Hkv * D);
  size(dattn_, n * H * D);
  size(dgate_, n * F);
  size(dup_, n * F);
  size(dact_, n * F);
  rows_ = n;
}

template <class T>
double TrainModel<T>::forward_backward(std::span<const int32_t> tokens, std::span<const T> params_span,
                                       std::span<T> grad_span, T grad_scale) {
  const ModelConfig& c = layout_.config;
  const int64_t n = static_cast<int64_t>(tokens.size()) - 1;
  if (n < 1) throw InputError(fmt::format("training sequence of {} tokens: need at least 2", tokens.size()));
  if (n > c.max_seq_len)
    throw InputError(fmt::format("training sequence of {} inputs exceeds max_position_embeddings {} of {}", n,
                                 c.max_seq_len, c.source));
  for (int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size)
      throw InputError(fmt::format("token id {} is outside the vocabulary [0, {}) of {}", id, c.vocab_size, c.source));
  EXPECTS(static_cast<int64_t>(params_span.size()) == layout_.total, "training parameters: flat size");
  const bool backward = !grad_span.empty();
  EXPECTS(!backward || static_cast<int64_t>(grad_span.size()) == layout_.total, "training gradient: flat size");
  ensure(n);
  const int64_t C = c.hidden_size, F = c.intermediate_size, H = c.num_heads, Hkv = c.num_kv_heads, D = c.head_dim,
                V = c.vocab_size;
  const float eps = c.rms_norm_eps, theta = c.rope_theta;
  const T* P = params_span.data();
  T* G = grad_span.data();
  const std::span<const int32_t> ids = tokens.first(static_cast<size_t>(n));
  const std::span<const int32_t> targets = tokens.subspan(1);
  auto lin = [&](const LayerOffsets& lo, Component k) { return P + lo.linear[static_cast<size_t>(k)]; };

  // ---- forward: the loop of LlamaModel::forward, keeping what the backward needs ----
  std::vector<T> stream(static_cast<size_t>(n * C));  // (n, C) the residual stream
  embedding_forward(P + layout_.embed, ids, C, stream.data());
  for (size_t l = 0; l < acts_.size(); ++l) {
    const LayerOffsets& lo = layout_.layers[l];
    if (lo.removed) continue;  // LayerChop: the residual stream passes through
    LayerActs& a = acts_[l];
    a.x = stream;
    rmsnorm_forward(stream.data(), P + lo.attn_norm, eps, n, C, a.n1.data(), a.r1.data());
    linear_forward(a.n1.data(), lin(lo, Component::Q), n, C, H * D, a.q.data());
    linear_forward(a.n1.data(), lin(lo, Component::K), n, C, Hkv * D, a.k.data());
    linear_forward(a.n1.data(), lin(lo, Component::V), n, C, Hkv * D, a.v.data());
    rope_apply(a.q.data(), n, H, D, theta, false);
    rope_apply(a.k.data(), n, Hkv, D, theta, false);
    attention_forward(a.q.data(), a.k.data(), a.v.data(), n, H, Hkv, D, a.attn.data(), a.probs.data());
    linear_forward(a.attn.data(), lin(lo, Component::O), n, H * D, C, dnorm_.data());  // dnorm_: scratch proj
    for (int64_t i = 0; i < n * C; ++i) stream[i] += dnorm_[i];
    a.mid = stream;
    rmsnorm_forward(stream.data(), P + lo.ffn_norm, eps, n, C, a.n2.data(), a.r2.data());
    linear_forward(a.n2.data(), lin(lo, Component::Gate), n, C, F, a.gate.data());
    linear_forward(a.n2.data(), lin(lo, Component::Up), n, C, F, a.up.data());
    swiglu_forward(a.gate.data(), a.up.data(), n * F, a.act.data());
    linear_forward(a.act.data(), lin(lo, Component::Down), n, F, C, dnorm_.data());
    for (int64_t i = 0; i < n * C; ++i) stream[i] += dnorm_[i];
  }
  x_final_ = stream;
  rmsnorm_forward(x_final_.data(), P + layout_.final_norm, eps, n, C, n_final_.data(), r_final_.data());
  linear_forward(n_final_.data(), P + layout_.lm_head, n, C, V, logits_.data());
  // dlogits overwrite the logits in place (each row is read before it is written).
  const double* log_z = nullptr;
  std::vector<double> backend_log_z;
  if constexpr (std::is_same_v<T, float>) {
    // log Z from the CPU backend's own vocab statistics, combined as combine_vocab_partials does at tp = 1:
    // the loss is then the inference NLL to the last bit (its vectorised sum order is the backend's).
    const Tensor view(std::shared_ptr<void>(), logits_.data(), DType::F32, Device::Cpu, {n, V});
    VocabPartials partials;
    CpuBackend().vocab_partials(view, {}, 0, partials);
    backend_log_z.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      backend_log_z[i] = static_cast<double>(partials.max[i]) + std::log(static_cast<double>(partials.sum_exp[i]));
    log_z = backend_log_z.data();
  }
  const double nll =
      cross_entropy(logits_.data(), targets, V, grad_scale, backward ? logits_.data() : nullptr, log_z);
  if (!backward) return nll;

  // ---- backward ----
  std::fill(dx_.begin(), dx_.end(), T(0));
  linear_backward(n_final_.data(), P + layout_.lm_head, logits_.data(), n, C, V, dnorm_.data(), false,
                  G + layout_.lm_head);
  rmsnorm_backward(x_final_.data(), P + layout_.final_norm, r_final_.data(), dnorm_.data(), n, C, dx_.data(),
                   G + layout_.final_norm);
  for (size_t l = acts_.size(); l-- > 0;) {
    const LayerOffsets& lo = layout_.layers[l];
    if (lo.removed) continue;
    LayerActs& a = acts_[l];
    auto glin = [&](Component k) { return G + lo.linear[static_cast<size_t>(k)]; };
    // feed-forward block: mid + down(silu(gate(n2)) * up(n2)); dx is d(loss)/d(block output)
    linear_backward(a.act.data(), lin(lo, Component::Down), dx_.data(), n, F, C, dact_.data(), false,
                    glin(Component::Down));
    swiglu_backward(a.gate.data(), a.up.data(), dact_.data(), n * F, dgate_.data(), dup_.data());
    linear_backward(a.n2.data(), lin(lo, Component::Gate), dgate_.data(), n, C, F, dnorm_.data(), false,
                    glin(Component::Gate));
    linear_backward(a.n2.data(), lin(lo, Component::Up), dup_.data(), n, C, F, dnorm_.data(), true,
                    glin(Component::Up));
    rmsnorm_backward(a.mid.data(), P + lo.ffn_norm, a.r2.data(), dnorm_.data(), n, C, dx_.data(), G + lo.ffn_norm);
    // attention block: x + o(attention(rope(q(n1)), rope(k(n1)), v(n1)))
    linear_backward(a.attn.data(), lin(lo, Component::O), dx_.data(), n, H * D, C, dattn_.data(), false,
                    glin(Component::O));
    std::fill(dk_.begin(), dk_.end(), T(0));
    std::fill(dv_.begin(), dv_.end(), T(0));
    attention_backward(a.q.data(), a.k.data(), a.v.data(), a.probs.data(), dattn_.data(), n, H, Hkv, D, dq_.data(),
                       dk_.data(), dv_.data(), scratch_);
    rope_apply(dq_.data(), n, H, D, theta, true);
    rope_apply(dk_.data(), n, Hkv, D, theta, true);
    linear_backward(a.n1.data(), lin(lo, Component::Q), dq_.data(), n, C, H * D, dnorm_.data(), false,
                    glin(Component::Q));
    linear_backward(a.n1.data(), lin(lo, Component::K), dk_.data(), n, C, Hkv * D, dnorm_.data(), true,
                    glin(Component::K));
    linear_backward(a.n1.data(), lin(lo, Component::V), dv_.data(), n, C, Hkv * D, dnorm_.data(), true,
                    glin(Component::V));
    rmsnorm_backward(a.x.data(), P + lo.attn_norm, a.r1.data(), dnorm_.data(), n, C, dx_.data(), G + lo.attn_norm);
  }
  embedding_backward(ids, C, dx_.data(), G + layout_.embed);
  return nll;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace divprune::train

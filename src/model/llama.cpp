#include "model/llama.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace divprune {

LlamaModel::LlamaModel(const ModelConfig& config, const ShardLayout& layout, Backend& backend, Communicator& comm,
                       DeviceWeights weights)
    : LlamaModel(config, layout, backend, comm, std::make_shared<DeviceWeights>(std::move(weights))) {}

LlamaModel::LlamaModel(const ModelConfig& config, const ShardLayout& layout, Backend& backend, Communicator& comm,
                       std::shared_ptr<DeviceWeights> weights)
    : config_(config), layout_(layout), backend_(backend), comm_(comm), weights_(std::move(weights)) {
  EXPECTS(comm_.size() == layout_.shard.size && comm_.rank() == layout_.shard.rank,
          "communicator does not match the shard layout");
}

KvCache LlamaModel::make_cache(int64_t capacity) {
  KvCache cache;
  cache.capacity = capacity;
  const DType dt = backend_.compute_dtype();
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    cache.k.push_back(backend_.empty({capacity, layout_.kv_heads, config_.head_dim}, dt));
    cache.v.push_back(backend_.empty({capacity, layout_.kv_heads, config_.head_dim}, dt));
  }
  return cache;
}

void LlamaModel::ensure_workspace(int64_t n) {
  if (ws_.rows >= n) return;
  const DType dt = backend_.compute_dtype();
  const int64_t C = config_.hidden_size, D = config_.head_dim, H = layout_.heads, F = layout_.ffn_rows.size();
  ws_.rows = n;
  ws_.x = backend_.empty({n, C}, dt);
  ws_.norm = backend_.empty({n, C}, dt);
  ws_.q = backend_.empty({n, H, D}, dt);
  ws_.attn = backend_.empty({n, H, D}, dt);
  ws_.proj = backend_.empty({n, C}, dt);
  ws_.gate = backend_.empty({n, F}, dt);
  ws_.up = backend_.empty({n, F}, dt);
  ws_.act = backend_.empty({n, F}, dt);
  // Logits stay fp32 on every backend: the vocab reductions (log-softmax, KL) are computed in fp32.
  ws_.logits = backend_.empty({n, layout_.vocab.size()}, DType::F32);
}

Tensor LlamaModel::forward(std::span<const int32_t> ids, int64_t pos0, KvCache& cache) {
  return forward(ids, pos0, cache, static_cast<int64_t>(ids.size()));
}

Tensor LlamaModel::forward(std::span<const int32_t> ids, int64_t pos0, KvCache& cache, int64_t logit_rows) {
  const int64_t n = static_cast<int64_t>(ids.size());
  EXPECTS(logit_rows >= 0 && logit_rows <= n, "forward: logit_rows outside [0, n]");
  if (pos0 + n > cache.capacity)
    throw InputError(fmt::format("sequence of {} tokens exceeds the context capacity {} (max_position_embeddings {})",
                                 pos0 + n, cache.capacity, config_.max_seq_len));
  for (int32_t id : ids)
    if (id < 0 || id >= config_.vocab_size)
      throw InputError(fmt::format("token id {} is outside the vocabulary [0, {}) of {}", id, config_.vocab_size,
                                   config_.source));
  ensure_workspace(n);
  const int64_t D = config_.head_dim, H = layout_.heads;
  Tensor x = ws_.x.rows(0, n);        // (n, C) residual stream
  Tensor norm = ws_.norm.rows(0, n);  // (n, C) attn_norm / ffn_norm output
  Tensor q = ws_.q.rows(0, n);        // (n, H, D)
  Tensor attn = ws_.attn.rows(0, n);  // (n, H, D)
  Tensor proj = ws_.proj.rows(0, n);  // (n, C) attn_out / ffn_out partial sums before the all-reduce
  Tensor gate = ws_.gate.rows(0, n);  // (n, F_local)
  Tensor up = ws_.up.rows(0, n);      // (n, F_local)
  Tensor act = ws_.act.rows(0, n);    // (n, F_local)

  backend_.embedding(weights_->embed, ids, layout_.vocab.begin, x);
  comm_.allreduce_sum(x);  // vocab-parallel embedding: each id lives on exactly one rank
  for (int64_t l = 0; l < config_.num_layers; ++l) {
    DeviceLayer& layer = weights_->layers[static_cast<size_t>(l)];
    // A column-parallel projection y = x · wᵀ (calibration may replace the product, see set_linear_product).
    auto linear = [&](Component c, const Tensor& in, const Tensor& w, Tensor& y) {
      if (linear_product_) linear_product_(l, c, in, w, y);
      else backend_.matmul(in, w, y);
    };
    // x += a row-parallel projection of `in` (o or down): partial products summed over the tp group, or the
    // calibration pass's replacement (see set_row_parallel).
    auto add_row_parallel = [&](LinearInput which, const Tensor& in, const Tensor& w) {
      if (row_parallel_) {
        backend_.add(x, row_parallel_(l, which, in));
        return;
      }
      backend_.matmul(in, w, proj);
      comm_.allreduce_sum(proj);
      backend_.add(x, proj);
    };
    Tensor k_new = cache.k[l].rows(pos0, n);  // (n, Hkv, D), written in place in the cache
    Tensor v_new = cache.v[l].rows(pos0, n);
    if (layer.removed) {
      // LayerChop: the layer contributes nothing; its cache rows are never read.
      continue;
    }
    // attention block: x += o(attention(rope(q(norm(x))), rope(k(norm(x))), v(norm(x))))
    backend_.rmsnorm(x, layer.attn_norm, config_.rms_norm_eps, norm);
    if (observer_) observer_(l, LinearInput::Attn, norm);
    linear(Component::Q, norm, layer.linear.q, q);
    linear(Component::K, norm, layer.linear.k, k_new);
    linear(Component::V, norm, layer.linear.v, v_new);
    backend_.rope(q, pos0, config_.rope_theta);
    backend_.rope(k_new, pos0, config_.rope_theta);
    backend_.attention(q, cache.k[l], cache.v[l], pos0, attn);
    Tensor attn_flat = attn.reshaped({n, H * D});
    if (observer_) observer_(l, LinearInput::AttnOut, attn_flat);
    add_row_parallel(LinearInput::AttnOut, attn_flat, layer.linear.o);  // o_proj
    // feed-forward block: x += down(silu(gate(norm(x))) * up(norm(x)))
    backend_.rmsnorm(x, layer.ffn_norm, config_.rms_norm_eps, norm);
    if (observer_) observer_(l, LinearInput::Mlp, norm);
    linear(Component::Gate, norm, layer.linear.gate, gate);
    linear(Component::Up, norm, layer.linear.up, up);
    backend_.swiglu(gate, up, act);
    if (observer_) observer_(l, LinearInput::MlpAct, act);
    add_row_parallel(LinearInput::MlpAct, act, layer.linear.down);  // down_proj
  }
  Tensor logits = ws_.logits.rows(0, logit_rows);  // (logit_rows, V_local) fp32
  if (logit_rows == 0) return logits;
  Tensor last_x = x.rows(n - logit_rows, logit_rows);
  Tensor last_norm = norm.rows(n - logit_rows, logit_rows);
  backend_.rmsnorm(last_x, weights_->final_norm, config_.rms_norm_eps, last_norm);
  backend_.matmul(last_norm, weights_->lm_head, logits);
  return logits;
}

}  // namespace divprune

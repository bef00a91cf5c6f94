#include "train/trainer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <random>

#include "core/errors.hpp"

namespace divprune::train {

double learning_rate(const TrainSettings& s, int64_t step) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return static_cast<double>(s.lr) * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const double span = static_cast<double>(std::max<int64_t>(1, s.steps - s.warmup_steps));
  const double progress = std::clamp(static_cast<double>(step - s.warmup_steps) / span, 0.0, 1.0);
  return s.min_lr + 0.5 * (static_cast<double>(s.lr) - s.min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

// ---- windows ----------------------------------------------------------------------------------------------------

WindowSampler::WindowSampler(std::span<const int32_t> stream, int64_t seq_len, int32_t bos_id, uint64_t seed)
    : stream_(stream.begin(), stream.end()), seq_len_(seq_len), bos_(bos_id), seed_(seed) {
  if (seq_len < 1) throw InputError(fmt::format("training seq_len: expected >= 1, found {}", seq_len));
  order_size_ = stream_.size() / static_cast<size_t>(seq_len);
  if (order_size_ == 0)
    throw InputError(fmt::format("training text: {} tokens, fewer than one window of seq_len {}", stream_.size(),
                                 seq_len));
}

std::vector<int64_t> WindowSampler::permutation(int64_t epoch) const {
  // Fisher-Yates over the raw mt19937_64 stream (std::shuffle and the distributions are implementation-defined;
  // this order is the same with every standard library). The modulo bias is < 2^-40 for any real text.
  std::vector<int64_t> order(order_size_);
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::mt19937_64 rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch));
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

std::vector<int32_t> WindowSampler::window(int64_t i) const {
  const int64_t n = static_cast<int64_t>(order_size_);
  const int64_t chunk = permutation(i / n)[static_cast<size_t>(i % n)];
  std::vector<int32_t> ids;
  ids.reserve(static_cast<size_t>(seq_len_ + 1));
  ids.push_back(bos_);
  ids.insert(ids.end(), stream_.begin() + chunk * seq_len_, stream_.begin() + (chunk + 1) * seq_len_);
  return ids;
}

// ---- trainer ------------------------------------------------------------------------------------------------------

Trainer::Trainer(const HostWeights& weights, const ModelConfig& config, const std::vector<bool>& removed,
                 Communicator& dp, TrainSettings settings, std::unique_ptr<GradientEngine> engine)
    : dp_(dp), settings_(settings), engine_(std::move(engine)) {
  if (weights.layout.shard.size != 1)
    throw InputError(fmt::format("training (heal) supports tp = 1 only, found tp = {}: run the replicas "
                                 "data-parallel with tp: 1",
                                 weights.layout.shard.size));
  const int64_t groups = settings_.grad_groups > 0 ? settings_.grad_groups : dp_.size();
  if (groups % dp_.size() != 0 || settings_.batch_sequences % groups != 0)
    throw InputError(fmt::format("training: batch_sequences {} must be a multiple of grad_groups {}, and grad_groups "
                                 "a multiple of the {} data-parallel ranks",
                                 settings_.batch_sequences, groups, dp_.size()));
  settings_.grad_groups = groups;
  layout_ = make_param_layout(config, removed);
  if (!engine_) engine_ = std::make_unique<CpuGradientEngine>(layout_);
  params_ = pack_params(layout_, weights);
  grad_mask_ = make_gradient_mask(layout_, params_);
  decay_mask_ = make_decay_mask(layout_);
  grad_.assign(params_.size(), 0.0f);
  m_.assign(params_.size(), 0.0f);
  v_.assign(params_.size(), 0.0f);
}

void Trainer::write_back(HostWeights& weights) const { unpack_params(layout_, params_, weights); }

void Trainer::restore(const TrainerState& state) {
  if (state.params.size() != params_.size() || state.m.size() != params_.size() || state.v.size() != params_.size() ||
      state.step < 0)
    throw InputError(fmt::format("training state: {} parameters at step {}, expected {} for this model and plan",
                                 state.params.size(), state.step, params_.size()));
  step_ = state.step;
  params_ = state.params;
  m_ = state.m;
  v_ = state.v;
}

StepStats Trainer::step(const WindowSampler& sampler) {
  std::vector<std::vector<int32_t>> batch;
  for (int64_t i = 0; i < settings_.batch_sequences; ++i)
    batch.push_back(sampler.window(step_ * settings_.batch_sequences + i));
  return step(batch);
}

StepStats Trainer::step(std::span<const std::vector<int32_t>> sequences) {
  const int64_t B = static_cast<int64_t>(sequences.size());
  const int64_t G = settings_.grad_groups, P = dp_.size(), r = dp_.rank();
  EXPECTS(B == settings_.batch_sequences, "training step: batch size differs from the settings");
  const int64_t per_group = B / G, local_groups = G / P;
  int64_t tokens = 0;
  for (const auto& s : sequences) tokens += static_cast<int64_t>(s.size()) - 1;
  const float scale = 1.0f / static_cast<float>(tokens);

  // This rank's groups, each its own buffer, summed over its sequences in batch order.
  const size_t total = params_.size();
  std::vector<std::vector<float>> group_grad(static_cast<size_t>(local_groups));
  std::vector<double> group_loss(static_cast<size_t>(local_groups), 0.0);
  for (int64_t g = 0; g < local_groups; ++g) {
    group_grad[g].assign(total, 0.0f);
    const int64_t first = (r * local_groups + g) * per_group;
    for (int64_t s = first; s < first + per_group; ++s)
      group_loss[g] += engine_->accumulate(sequences[s], params_, group_grad[g], scale);
  }

  // All groups' gradients on every rank, added in group order (chunked all-gather: bounded extra memory).
  constexpr size_t kChunk = size_t{1} << 18;
  std::vector<float> send, recv;
  for (size_t c0 = 0; c0 < total; c0 += kChunk) {
    const size_t len = std::min(kChunk, total - c0);
    send.resize(len * local_groups);
    recv.resize(len * G);
    for (int64_t g = 0; g < local_groups; ++g)
      std::copy_n(group_grad[g].begin() + c0, len, send.begin() + g * len);
    dp_.allgather(send, recv);  // block r holds rank r's groups: recv is in group order
    for (size_t i = 0; i < len; ++i) {
      float sum = recv[i];
      for (int64_t g = 1; g < G; ++g) sum += recv[g * len + i];
      grad_[c0 + i] = sum;
    }
  }
  // The loss the same way (doubles travel as pairs of int32).
  std::vector<int32_t> loss_send(static_cast<size_t>(2 * local_groups)), loss_recv(static_cast<size_t>(2 * G));
  for (int64_t g = 0; g < local_groups; ++g) {
    const uint64_t bits = std::bit_cast<uint64_t>(group_loss[g]);
    loss_send[2 * g] = static_cast<int32_t>(static_cast<uint32_t>(bits));
    loss_send[2 * g + 1] = static_cast<int32_t>(static_cast<uint32_t>(bits >> 32));
  }
  dp_.allgather(std::span<const int32_t>(loss_send), loss_recv);
  double loss_sum = 0.0;
  for (int64_t g = 0; g < G; ++g)
    loss_sum += std::bit_cast<double>(static_cast<uint64_t>(static_cast<uint32_t>(loss_recv[2 * g])) |
                                      (static_cast<uint64_t>(static_cast<uint32_t>(loss_recv[2 * g + 1])) << 32));

  // Pruned weights stay zero: their gradient is masked (so AdamW's moments and update stay zero).
  double sum_sq = 0.0;
  for (size_t i = 0; i < total; ++i) {
    if (!grad_mask_[i]) grad_[i] = 0.0f;
    sum_sq += static_cast<double>(grad_[i]) * grad_[i];
  }
  StepStats stats;
  stats.step = step_;
  stats.loss = loss_sum / static_cast<double>(tokens);
  stats.grad_norm = std::sqrt(sum_sq);
  stats.lr = learning_rate(settings_, step_);
  stats.tokens = tokens;
  const float clip = settings_.clip_norm > 0.0f && stats.grad_norm > settings_.clip_norm
                         ? static_cast<float>(settings_.clip_norm / stats.grad_norm)
                         : 1.0f;

  // AdamW: m, v with bias correction; the decay is decoupled (applied to the weight, not added to the gradient).
  const double t = static_cast<double>(step_ + 1);
  const float b1 = settings_.beta1, b2 = settings_.beta2;
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), t));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), t));
  const float lr = static_cast<float>(stats.lr), wd = settings_.weight_decay, eps = settings_.adam_eps;
  for (size_t i = 0; i < total; ++i) {
    const float g = grad_[i] * clip;
    m_[i] = b1 * m_[i] + (1.0f - b1) * g;
    v_[i] = b2 * v_[i] + (1.0f - b2) * g * g;
    const float update = (m_[i] / bc1) / (std::sqrt(v_[i] / bc2) + eps);
    params_[i] -= lr * (update + (decay_mask_[i] ? wd * params_[i] : 0.0f));
  }
  ++step_;
  return stats;
}

}  // namespace divprune::train

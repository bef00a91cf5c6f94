#include "compress/calibration.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include <random>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace divprune {

LinearInput linear_input_of(Component c) {
  switch (c) {
    case Component::Q:
    case Component::K:
    case Component::V: return LinearInput::Attn;
    case Component::O: return LinearInput::AttnOut;
    case Component::Gate:
    case Component::Up: return LinearInput::Mlp;
    case Component::Down: return LinearInput::MlpAct;
  }
  return LinearInput::Attn;
}

const InputStats& CalibrationStats::for_component(int64_t layer, Component c) const {
  EXPECTS(layer >= 0 && layer < static_cast<int64_t>(layers.size()), "calibration statistics: layer out of range");
  return layers[static_cast<size_t>(layer)][static_cast<size_t>(linear_input_of(c))];
}

std::vector<std::vector<int32_t>> calibration_sequences(const Tokenizer& tokenizer, const CalibrationSpec& spec) {
  const std::string where = spec.text.string();
  if (spec.sequences <= 0 || spec.length <= 0)
    throw InputError(fmt::format("{}: calibration needs sequences > 0 and length > 0, found {} and {}", where,
                                 spec.sequences, spec.length));
  const std::vector<int32_t> ids = tokenizer.encode(read_input_file(spec.text, "the calibration text"));
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < spec.length)
    throw InputError(fmt::format("{}: the calibration text holds {} tokens, fewer than one sequence of {}", where, n,
                                 spec.length));
  std::mt19937_64 rng(spec.seed);
  const uint64_t starts = static_cast<uint64_t>(n - spec.length + 1);
  std::vector<std::vector<int32_t>> out;
  for (int64_t s = 0; s < spec.sequences; ++s) {
    const int64_t start = static_cast<int64_t>(rng() % starts);
    out.emplace_back(ids.begin() + start, ids.begin() + start + spec.length);
  }
  return out;
}

namespace {

// G += XᵀX for X (n, d) fp32, accumulated in double (upper triangle, by OpenBLAS's dsyrk; mirrored at the end).
void accumulate_gram(InputStats& s, const std::vector<float>& x, int64_t n) {
  const int64_t d = s.dim;
  std::vector<double> xd(x.begin(), x.begin() + n * d);
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(d), static_cast<int>(n), 1.0, xd.data(),
              static_cast<int>(d), 1.0, s.gram.data(), static_cast<int>(d));
  s.tokens += n;
}

}  // namespace

CalibrationStats collect_calibration(LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                     int64_t only_layer) {
  const ModelConfig& config = model.config();
  const ShardLayout& layout = model.layout();
  Communicator& comm = model.comm();
  const int tp = comm.size();
  CalibrationStats stats;
  stats.layers.resize(static_cast<size_t>(config.num_layers));
  const std::array<int64_t, kNumLinearInputs> dims = {config.hidden_size, config.num_heads * config.head_dim,
                                                      config.hidden_size, config.intermediate_size};
  for (int64_t l = 0; l < config.num_layers; ++l)
    for (int i = 0; i < kNumLinearInputs; ++i) {
      if (only_layer >= 0 && l != only_layer) continue;
      auto& layer = stats.layers[static_cast<size_t>(l)];
      layer[static_cast<size_t>(i)].dim = dims[static_cast<size_t>(i)];
      layer[static_cast<size_t>(i)].gram.assign(static_cast<size_t>(dims[i] * dims[i]), 0.0);
    }
  std::vector<float> local, gathered, full;
  model.set_observer([&](int64_t l, LinearInput which, const Tensor& x) {
    if (only_layer >= 0 && l != only_layer) return;
    InputStats& s = stats.layers[static_cast<size_t>(l)][static_cast<size_t>(which)];
    const int64_t n = x.shape()[0];
    const int64_t w = x.numel() / n;
    local.resize(static_cast<size_t>(n * w));
    model.backend().download(x, local);
    if (w == s.dim) {
      accumulate_gram(s, local, n);
      return;
    }
    // Row-parallel input (o, down): rank r holds columns [r·w, (r+1)·w) (equal shards, model/shard.hpp).
    const Range cols = which == LinearInput::AttnOut ? layout.q_rows : layout.ffn_rows;
    EXPECTS(w * tp == s.dim && cols.begin == layout.shard.rank * w, "row-parallel input shards are not equal blocks");
    gathered.resize(static_cast<size_t>(n * w * tp));
    comm.allgather(local, gathered);
    full.resize(static_cast<size_t>(n * s.dim));
    for (int r = 0; r < tp; ++r)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < w; ++j)
          full[static_cast<size_t>(t * s.dim + r * w + j)] = gathered[static_cast<size_t>((r * n + t) * w + j)];
    accumulate_gram(s, full, n);
  });
  try {
    for (const std::vector<int32_t>& seq : sequences) {
      KvCache cache = model.make_cache(static_cast<int64_t>(seq.size()));
      model.forward(seq, 0, cache);
    }
  } catch (...) {
    model.set_observer({});
    throw;
  }
  model.set_observer({});
  for (auto& layer : stats.layers)
    for (InputStats& s : layer)
      for (int64_t i = 0; i < s.dim; ++i)
        for (int64_t j = 0; j < i; ++j) s.gram[static_cast<size_t>(i * s.dim + j)] = s.gram[static_cast<size_t>(j * s.dim + i)];
  return stats;
}

}  // namespace divprune

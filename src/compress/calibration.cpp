#include "compress/calibration.hpp"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <utility>

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
  Backend& backend = model.backend();
  // The statistics must not depend on tp (issue 16: the working copies at tp 2 and 4 are bit-identical to tp 1's),
  // so neither may the calibration activations. Two things make the default forward's depend on it:
  //  - row-parallel o/down sum per-rank partial products in an all-reduce, whose result differs from tp 1's single
  //    GEMM in the last bits. Here they are computed like column-parallel projections: rank r takes its block of
  //    C/tp output rows of the FULL weight (assembled once per layer from the ranks' column shards) times the FULL
  //    input (which the statistics need all-gathered anyway), and the output blocks are all-gathered;
  //  - a BLAS rounds an output element of x · wᵀ depending on the shape of the call (OpenBLAS 0.3.21 takes another
  //    kernel for small products: 24 x 32 x 64 differs from 24 x 64 x 64 in most elements), and a shard has
  //    1/tp of the columns. Here every product is cut into calls of `chunk` output columns, the same at every tp.
  // Every output element is then the same call's result at any tp. Exact on the CPU backend; on CUDA (bf16) the
  // chunked calls are not installed (writing a column block of a device tensor has no backend operation) and the
  // statistics agree across tp to bf16 tolerance. Cost: a second copy of this rank's share of o/down (as large as
  // its shard, held for the pass), two all-gathers per row-parallel product instead of one all-reduce, and GEMM
  // calls of head-sized width (the pass is dominated by the Gram accumulation, compress/calibration.hpp).
  const bool exact = backend.device() == Device::Cpu;
  const int64_t C = config.hidden_size, D = config.head_dim;
  const int64_t out_rows = C / tp;  // tp divides the heads, so C = heads·head_dim
  // Output columns per call: R / gcd(KV heads, R), which divides R / tp for every tp the model allows.
  auto chunk_of = [&](int64_t total) { return total / std::gcd(config.num_kv_heads, total); };
  auto chunked_product = [&](const Tensor& x, const Tensor& w, Tensor& y, int64_t chunk) {
    const int64_t n = x.dim(0), rows = w.dim(0);
    EXPECTS(rows % chunk == 0 && y.numel() == n * rows, "calibration: a projection is not cut into equal chunks");
    Tensor part = backend.empty({n, chunk}, DType::F32);
    float* out = y.data_as<float>();
    for (int64_t j0 = 0; j0 < rows; j0 += chunk) {
      backend.matmul(x, w.rows(j0, chunk), part);
      const float* p = part.data_as<float>();
      for (int64_t t = 0; t < n; ++t)
        std::copy(p + t * chunk, p + (t + 1) * chunk, out + t * rows + j0);
    }
  };
  if (exact) {
    model.set_linear_product([&](int64_t, Component c, const Tensor& x, const Tensor& w, Tensor& y) {
      const int64_t total = c == Component::Q   ? config.num_heads * D
                            : c == Component::K || c == Component::V ? config.num_kv_heads * D
                                                                      : config.intermediate_size;
      chunked_product(x, w, y, chunk_of(total));
    });
  }
  std::map<std::pair<int64_t, LinearInput>, Tensor> weight_rows;  // (C/tp, full input width) per layer and input
  std::vector<float> local, gathered, full, product, all_products, assembled;
  // Gathers this rank's input columns x (n, w) into `out` (n, dim): rank r holds columns [r·w, (r+1)·w) (equal
  // shards, model/shard.hpp).
  auto gather_columns = [&](const Tensor& x, int64_t dim, std::vector<float>& out) {
    const int64_t n = x.shape()[0];
    const int64_t w = x.numel() / n;
    EXPECTS(w * tp == dim, "row-parallel input shards are not equal blocks");
    local.resize(static_cast<size_t>(n * w));
    backend.download(x, local);
    gathered.resize(static_cast<size_t>(n * w * tp));
    comm.allgather(local, gathered);
    out.resize(static_cast<size_t>(n * dim));
    for (int r = 0; r < tp; ++r)
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < w; ++j)
          out[static_cast<size_t>(t * dim + r * w + j)] = gathered[static_cast<size_t>((r * n + t) * w + j)];
  };
  const ScopedModelHooks hooks(model);  // removed when this function returns or throws
  model.set_observer([&](int64_t l, LinearInput which, const Tensor& x) {
    if (only_layer >= 0 && l != only_layer) return;
    if (tp > 1 && (which == LinearInput::AttnOut || which == LinearInput::MlpAct))
      return;  // gathered and accumulated by the row-parallel product below
    InputStats& s = stats.layers[static_cast<size_t>(l)][static_cast<size_t>(which)];
    const int64_t n = x.shape()[0];
    EXPECTS(x.numel() == n * s.dim, "a column-parallel input is not full width");
    local.resize(static_cast<size_t>(n * s.dim));
    backend.download(x, local);
    accumulate_gram(s, local, n);
  });
  if (tp > 1 || exact) {
    model.set_row_parallel([&](int64_t l, LinearInput which, const Tensor& x) -> Tensor {
      const DeviceLayer& layer = model.weights().layers[static_cast<size_t>(l)];
      const Tensor& shard = which == LinearInput::AttnOut ? layer.linear.o : layer.linear.down;
      const int64_t n = x.shape()[0];
      if (tp == 1) {  // the whole product is local: only the chunked calls
        Tensor y = backend.empty({n, C}, backend.compute_dtype());
        chunked_product(x, shard, y, chunk_of(C));
        return y;
      }
      const Range cols = which == LinearInput::AttnOut ? layout.q_rows : layout.ffn_rows;
      const int64_t dim = cols.size() * tp;
      if (only_layer >= 0 && l > only_layer) {
        // Sequential mode: the layers after the calibrated one do not reach its statistics; the default product.
        Tensor y = backend.empty({n, C}, backend.compute_dtype());
        backend.matmul(x, shard, y);
        comm.allreduce_sum(y);
        return y;
      }
      gather_columns(x, dim, full);
      if (only_layer < 0 || l == only_layer)
        accumulate_gram(stats.layers[static_cast<size_t>(l)][static_cast<size_t>(which)], full, n);
      Tensor& w_rows = weight_rows[{l, which}];
      if (!w_rows.defined()) {
        // This rank's output rows [rank·C/tp, (rank+1)·C/tp) of the full weight, from every rank's (C, w) shard.
        const int64_t w = dim / tp;
        local.resize(static_cast<size_t>(C * w));
        backend.download(shard, local);
        gathered.resize(static_cast<size_t>(C * w * tp));
        comm.allgather(local, gathered);
        assembled.resize(static_cast<size_t>(out_rows * dim));
        const int64_t row0 = layout.shard.rank * out_rows;
        for (int r = 0; r < tp; ++r)
          for (int64_t i = 0; i < out_rows; ++i)
            for (int64_t j = 0; j < w; ++j)
              assembled[static_cast<size_t>(i * dim + r * w + j)] =
                  gathered[static_cast<size_t>((r * C + row0 + i) * w + j)];
        w_rows = backend.upload(assembled, {out_rows, dim}, backend.compute_dtype());
      }
      const Tensor x_full = backend.upload(full, {n, dim}, backend.compute_dtype());
      Tensor y = backend.empty({n, out_rows}, backend.compute_dtype());
      if (exact) chunked_product(x_full, w_rows, y, chunk_of(C));
      else backend.matmul(x_full, w_rows, y);
      product.resize(static_cast<size_t>(n * out_rows));
      backend.download(y, product);
      all_products.resize(static_cast<size_t>(n * C));
      comm.allgather(product, all_products);
      assembled.resize(static_cast<size_t>(n * C));
      for (int r = 0; r < tp; ++r)
        for (int64_t t = 0; t < n; ++t)
          for (int64_t i = 0; i < out_rows; ++i)
            assembled[static_cast<size_t>(t * C + r * out_rows + i)] =
                all_products[static_cast<size_t>((r * n + t) * out_rows + i)];
      return backend.upload(assembled, {n, C}, backend.compute_dtype());
    });
  }
  for (const std::vector<int32_t>& seq : sequences) {
    KvCache cache = model.make_cache(static_cast<int64_t>(seq.size()));
    model.forward(seq, 0, cache, /*logit_rows=*/0);  // the hooks collect the statistics; no logits needed
  }
  for (auto& layer : stats.layers)
    for (InputStats& s : layer)
      for (int64_t i = 0; i < s.dim; ++i)
        for (int64_t j = 0; j < i; ++j) s.gram[static_cast<size_t>(i * s.dim + j)] = s.gram[static_cast<size_t>(j * s.dim + i)];
  return stats;
}

}  // namespace divprune

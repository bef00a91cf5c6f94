#pragma once
// The Llama-2 decoder, written once against the Backend interface (CPU or CUDA) and a Communicator
// (tensor-parallel group). One call processes n consecutive tokens of one sequence starting at position pos0,
// appending their keys/values to the KV cache: pos0 = 0 with the whole sequence is the teacher-forced
// forward, n = 1 steps are incremental decoding.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "core/communicator.hpp"
#include "kernels/backend.hpp"
#include "model/config.hpp"
#include "model/shard.hpp"
#include "model/weights.hpp"

namespace divprune {

// Per-layer key/value caches of this rank's KV heads: k[l], v[l] are (T, Hkv_local, D).
struct KvCache {
  std::vector<Tensor> k;
  std::vector<Tensor> v;
  int64_t capacity = 0;
};

// The four distinct inputs of a decoder layer's linear projections, as an observer sees them (this rank's
// columns: the full width for Attn/Mlp, the local heads / channels for AttnOut/MlpAct at tp > 1).
enum class LinearInput { Attn = 0, AttnOut, Mlp, MlpAct };  // q,k,v | o | gate,up | down
constexpr int kNumLinearInputs = 4;
// Called during forward with each layer's projection inputs, (n, width) on the backend; used to collect
// calibration statistics (compress/calibration.hpp). Runs on every rank of the group in the same order, so it
// may call collectives of the group's communicator.
using ActivationObserver = std::function<void(int64_t layer, LinearInput input, const Tensor& x)>;
// Computes a row-parallel product (o of AttnOut, down of MlpAct; `x` is this rank's columns of the input) in place
// of the default local partial GEMM + all-reduce, and returns the full (n, C) product, the same on every rank. The
// all-reduce sums partial products in an order that depends on tp, so the default's result differs from tp 1's in
// the last bits; the calibration pass (compress/calibration.cpp) needs activations that do not, and installs one.
using RowParallelProduct = std::function<Tensor(int64_t layer, LinearInput input, const Tensor& x)>;
// Computes y = x · wᵀ of a column-parallel projection (q, k, v, gate, up) in place of backend().matmul: a BLAS
// may round an output element differently depending on how many columns the call has (OpenBLAS takes another
// kernel for small products), i.e. on tp; the calibration pass installs one whose calls have the same shape at
// every tp.
using LinearProduct = std::function<void(int64_t layer, Component c, const Tensor& x, const Tensor& w, Tensor& y)>;

class LlamaModel {
 public:
  LlamaModel(const ModelConfig& config, const ShardLayout& layout, Backend& backend, Communicator& comm,
             DeviceWeights weights);
  // Shares `weights` with other models: CPU worker threads of one rank each run their own model (own
  // backend scratch, own activations) over one set of weights; a compression plan applied to the shared
  // weights is seen by all of them.
  LlamaModel(const ModelConfig& config, const ShardLayout& layout, Backend& backend, Communicator& comm,
             std::shared_ptr<DeviceWeights> weights);

  const ModelConfig& config() const { return config_; }
  const ShardLayout& layout() const { return layout_; }
  Backend& backend() { return backend_; }
  Communicator& comm() { return comm_; }
  DeviceWeights& weights() { return *weights_; }
  const std::shared_ptr<DeviceWeights>& shared_weights() const { return weights_; }

  KvCache make_cache(int64_t capacity);
  // Runs tokens ids at positions pos0..pos0+n-1 and returns this rank's logits slice (n, V_local), columns
  // layout().vocab. The returned tensor is a view of an internal buffer, valid until the next call.
  Tensor forward(std::span<const int32_t> ids, int64_t pos0, KvCache& cache);
  // The same pass, but the logits of the last `logit_rows` positions only (logit_rows, V_local), 0 <= logit_rows
  // <= n. The vocabulary projection is the largest matmul of a small model (Llama-2-7B: 131M of 6.7B parameters,
  // the tiny test models: two thirds of the FLOPs per token): a caller that scores only some positions (the
  // targets after a context, the last position of a prompt) or none (calibration, activation statistics) skips
  // the rest. Each returned row is the same as forward()'s row up to the BLAS's rounding for another row count.
  Tensor forward(std::span<const int32_t> ids, int64_t pos0, KvCache& cache, int64_t logit_rows);
  // Installs (or, with an empty function, removes) the observer of the projection inputs; empty (the default)
  // costs nothing. Users: calibration statistics (compress/calibration.cpp), OWL outlier ratios
  // (pipelines/baselines.cpp, Attn and Mlp inputs only: the same on every tp rank).
  void set_observer(ActivationObserver observer) { observer_ = std::move(observer); }
  // Installs (or removes) the replacement of the row-parallel products; empty (the default) costs nothing.
  void set_row_parallel(RowParallelProduct product) { row_parallel_ = std::move(product); }
  void set_linear_product(LinearProduct product) { linear_product_ = std::move(product); }
  // Removes the observer and both product replacements (ScopedModelHooks calls it when its scope ends).
  void clear_hooks() {
    observer_ = {};
    row_parallel_ = {};
    linear_product_ = {};
  }

 private:
  // Activation buffers, grown on demand and reused (a device allocation per call would dominate on GPU).
  struct Workspace {
    int64_t rows = 0;
    Tensor x, norm, q, attn, proj, gate, up, act, logits;  // x (n, C) ... logits (n, V_local)
  };
  void ensure_workspace(int64_t n);

  ModelConfig config_;
  ShardLayout layout_;
  Backend& backend_;
  Communicator& comm_;
  std::shared_ptr<DeviceWeights> weights_;
  Workspace ws_;
  ActivationObserver observer_;
  RowParallelProduct row_parallel_;
  LinearProduct linear_product_;
};

// The hooks installed on a model for the length of a scope: whatever the scope installs (set_observer,
// set_row_parallel, set_linear_product) is removed when it ends, also when a forward pass throws, so the next
// user of the model never runs a stale observer over dead references.
class ScopedModelHooks {
 public:
  explicit ScopedModelHooks(LlamaModel& model) : model_(model) {}
  ~ScopedModelHooks() { model_.clear_hooks(); }
  ScopedModelHooks(const ScopedModelHooks&) = delete;
  ScopedModelHooks& operator=(const ScopedModelHooks&) = delete;

 private:
  LlamaModel& model_;
};

}  // namespace divprune

#pragma once
// The backend interface: the few operations the Llama forward is written against (DESIGN: "one forward, two
// backends"). The CPU backend (kernels/cpu) is the fp32 reference; the CUDA backend (kernels/cuda) keeps
// weights and activations in bf16 with fp32 accumulation and is tested against the CPU one.
//
// Shapes use n = tokens in this call, C = hidden size, H = local query heads, Hkv = local KV heads,
// D = head dim, T = KV-cache capacity, V = local vocab slice (vocab-parallel lm_head under tensor parallelism).
// All tensors are row-major. Weights are [out, in] as in Hugging Face checkpoints.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/tensor.hpp"

namespace divprune {

// Per-row statistics of a local vocab slice of logits, before they are combined across tensor-parallel
// ranks (see model/vocab_stats.hpp). Indices are global token ids.
struct VocabPartials {
  std::vector<float> max;           // (n) max logit of the slice
  std::vector<float> sum_exp;       // (n) sum exp(logit - max) over the slice
  std::vector<int32_t> argmax;      // (n) global id of the max; ties -> lowest id
  std::vector<float> target_logit;  // (n) logit of targets[i] if it lies in this slice, else 0
  std::vector<uint8_t> has_target;  // (n) 1 if targets[i] lies in this slice
  // Inline: the CUDA backend (divprune_cuda, linked below divprune_kernels) calls it too.
  void resize(size_t n) {
    max.assign(n, 0.0f);
    sum_exp.assign(n, 0.0f);
    argmax.assign(n, 0);
    target_logit.assign(n, 0.0f);
    has_target.assign(n, 0);
  }
};

// Per-row sums of Backend::kl_partials over a local vocab slice; "stored" columns are those where the base
// log-prob is finite (all of them with full storage).
struct KlPartials {
  std::vector<double> kl;           // (n) sum over stored columns of p_b (log p_b - log p_c)
  std::vector<double> base_mass;    // (n) sum over stored columns of p_b
  std::vector<double> model_mass;   // (n) sum over stored columns of p_c
  std::vector<double> model_total;  // (n) sum over all columns of p_c (1 but for the rounding of log_z)
  void resize(size_t n);
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  // dtype of weights and activations on this backend (F32 on CPU, BF16 on CUDA).
  virtual DType compute_dtype() const = 0;

  virtual Tensor empty(const Shape& shape, DType dtype) = 0;
  // Copies host fp32 values into a new tensor of `dtype` on this backend.
  virtual Tensor upload(std::span<const float> host, const Shape& shape, DType dtype) = 0;
  // Copies a tensor back to host fp32.
  virtual void download(const Tensor& tensor, std::span<float> host) = 0;
  virtual void synchronize() {}

  // out (n, C) = table[ids - vocab_begin] for ids inside the local slice table (V, C), zero rows otherwise
  // (vocab-parallel embedding: the all-reduce over tensor-parallel ranks completes the lookup).
  virtual void embedding(const Tensor& table, std::span<const int32_t> ids, int64_t vocab_begin, Tensor& out) = 0;
  // out (n, C) = x / rms(x) * weight
  virtual void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // y (n, out) = x (n, in) · w (out, in)^T. y is in the compute dtype or float32 (the lm_head writes fp32 logits).
  virtual void matmul(const Tensor& x, const Tensor& w, Tensor& y) = 0;
  // Rotary embedding in place on x (n, heads, D), Hugging Face rotate-half convention, positions pos0 + i.
  virtual void rope(Tensor& x, int64_t pos0, float theta) = 0;
  // Causal GQA attention: q (n, H, D) at positions pos0..pos0+n-1 against k/v caches (T, Hkv, D) filled up to
  // pos0 + n; out (n, H, D). Query head h uses KV head h / (H / Hkv).
  virtual void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t pos0, Tensor& out) = 0;
  // out = silu(gate) * up, all (n, F)
  virtual void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // x += y
  virtual void add(Tensor& x, const Tensor& y) = 0;
  // Log-softmax statistics of logits (n, V) whose column j is token vocab_begin + j. targets may be empty.
  virtual void vocab_partials(const Tensor& logits, std::span<const int32_t> targets, int64_t vocab_begin,
                              VocabPartials& out) = 0;
  // KL(base || this model) partials of a local vocab slice, before the sum over tensor-parallel ranks
  // (metrics/divergence.hpp: distributed_kl). The base log-probs are log p_b(i, j) = base_values(i, j) -
  // base_offset[i] (the double offset keeps a row's renormalisation exact: fp16 values are exact in float,
  // their difference with a double offset is not); base_values is host (n, V) float32, -inf where the base
  // distribution is not stored (outside a top-k). With log p_c = logits(i, j) - log_z[i] (log_z: the
  // whole-vocabulary log-partition from combine_vocab_partials), see KlPartials for the sums. Exponentials and
  // sums are in double: the KL of close models is a small difference of log-probs.
  // The default (kernels/cpu/cpu_backend.cpp) reads host float32 logits in place and downloads any others.
  virtual void kl_partials(const Tensor& logits, std::span<const float> base_values,
                           std::span<const double> base_offset, std::span<const double> log_z, KlPartials& out);
};

// The reference implementation of Backend::kl_partials on host arrays: logits (n, v) row-major.
void kl_partials_host(const float* logits, int64_t n, int64_t v, std::span<const float> base_values,
                      std::span<const double> base_offset, std::span<const double> log_z, KlPartials& out);

enum class BackendKind { Cpu, Cuda };

// Creates a backend. Cuda throws InputError when divprune was built without CUDA or no GPU is visible.
// `device_index` selects the GPU (replicas sharing a node use different ones).
std::unique_ptr<Backend> make_backend(BackendKind kind, int device_index = 0);
bool cuda_backend_available();

}  // namespace divprune

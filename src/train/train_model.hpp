#pragma once
// The training forward and backward of the Llama decoder on the CPU, for one sequence at a time.
//
// GradientEngine is what the optimizer and the data-parallel step (train/trainer.hpp) see: "give me the summed
// NLL of this sequence and add its gradient into this buffer". CpuGradientEngine implements it with
// TrainModel<float>. A CUDA backward is added later as a second GradientEngine (kernels/cuda gets the backward
// kernels declared next to the forward ones, each tested against the functions of train/ops.hpp as the CUDA
// forward is tested against the CPU backend): it keeps the flat parameters and the gradient in device memory
// with the same ParamLayout offsets, and the Trainer's host loops (reduction, clipping, AdamW) move behind the
// engine as `reduce`/`apply_update` calls on those device buffers; nothing above the engine changes.
//
// TrainModel<double> exists for the tests: the same code in double, checked against central finite differences.
#include <cstdint>
#include <span>
#include <vector>

#include "train/params.hpp"

namespace divprune::train {

template <class T>
class TrainModel {
 public:
  explicit TrainModel(ParamLayout layout);
  const ParamLayout& layout() const { return layout_; }

  // tokens (n + 1): inputs tokens[0..n) at positions 0..n-1 predict tokens[1..n]. Returns the summed NLL of the
  // n targets (natural log). With `grad` non-empty, adds grad_scale * d(summed NLL)/d(params) into it (masked
  // entries included: the caller masks the reduced gradient once).
  double forward_backward(std::span<const int32_t> tokens, std::span<const T> params, std::span<T> grad,
                          T grad_scale);
  double loss(std::span<const int32_t> tokens, std::span<const T> params) {
    return forward_backward(tokens, params, {}, T(0));
  }

 private:
  // Activations of one layer kept by the forward for the backward.
  struct LayerActs {
    std::vector<T> x;            // (n, C) residual stream entering the layer
    std::vector<T> r1, n1;       // (n), (n, C) attn_norm: 1/rms, output
    std::vector<T> q, k, v;      // (n, H, D), (n, Hkv, D) x2: q and k after RoPE
    std::vector<T> probs;        // (H, n, n) attention probabilities
    std::vector<T> attn;         // (n, H*D)
    std::vector<T> mid;          // (n, C) residual stream after the attention block
    std::vector<T> r2, n2;       // (n), (n, C) ffn_norm
    std::vector<T> gate, up, act;  // (n, F)
  };
  void ensure(int64_t n);

  ParamLayout layout_;
  int64_t rows_ = 0;
  std::vector<LayerActs> acts_;   // (L); removed layers keep empty buffers
  std::vector<T> x_final_, r_final_, n_final_;  // (n, C), (n), (n, C)
  std::vector<T> logits_;                       // (n, V); holds dlogits during the backward
  // Backward scratch.
  std::vector<T> dx_, dnorm_, dq_, dk_, dv_, dattn_, dgate_, dup_, dact_, scratch_;
};

extern template class TrainModel<float>;
extern template class TrainModel<double>;

// The interface of a backward implementation (see the header comment). Parameters and gradient are flat arrays
// in ParamLayout order.
class GradientEngine {
 public:
  virtual ~GradientEngine() = default;
  virtual const ParamLayout& layout() const = 0;
  // Summed NLL of the targets tokens[1..]; adds grad_scale * its gradient into grad.
  virtual double accumulate(std::span<const int32_t> tokens, std::span<const float> params, std::span<float> grad,
                            float grad_scale) = 0;
};

class CpuGradientEngine final : public GradientEngine {
 public:
  explicit CpuGradientEngine(ParamLayout layout) : model_(std::move(layout)) {}
  const ParamLayout& layout() const override { return model_.layout(); }
  double accumulate(std::span<const int32_t> tokens, std::span<const float> params, std::span<float> grad,
                    float grad_scale) override {
    return model_.forward_backward(tokens, params, grad, grad_scale);
  }

 private:
  TrainModel<float> model_;
};

}  // namespace divprune::train

#pragma once
// The CPU backend: fp32 everywhere, OpenBLAS for GEMMs (including the two GEMMs of attention). It is the
// reference every other backend is tested against.
#include "kernels/backend.hpp"

namespace divprune {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::Cpu; }
  DType compute_dtype() const override { return DType::F32; }

  Tensor empty(const Shape& shape, DType dtype) override;
  Tensor upload(std::span<const float> host, const Shape& shape, DType dtype) override;
  void download(const Tensor& tensor, std::span<float> host) override;

  void embedding(const Tensor& table, std::span<const int32_t> ids, int64_t vocab_begin, Tensor& out) override;
  void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  void matmul(const Tensor& x, const Tensor& w, Tensor& y) override;
  void rope(Tensor& x, int64_t pos0, float theta) override;
  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t pos0, Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void add(Tensor& x, const Tensor& y) override;
  void vocab_partials(const Tensor& logits, std::span<const int32_t> targets, int64_t vocab_begin,
                      VocabPartials& out) override;

 private:
  std::vector<float> scores_;  // attention scratch (n, pos0 + n), reused across calls
};

}  // namespace divprune

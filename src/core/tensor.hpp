#pragma once
// Tensor: a typed, shaped view of memory owned by a backend (host memory for the CPU backend, device
// memory for CUDA). Row-major, contiguous. Copying a Tensor copies the handle, not the data; `rows()` makes
// a view of consecutive rows (dim 0) that shares the storage, which is how the KV cache is written in place.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace divprune {

enum class Device { Cpu, Cuda };

using Shape = std::vector<int64_t>;

std::string shape_string(const Shape& shape);  // "[2, 32, 64]"
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<void> storage, void* data, DType dtype, Device device, Shape shape)
      : storage_(std::move(storage)), data_(data), dtype_(dtype), device_(device), shape_(std::move(shape)) {}

  bool defined() const { return data_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return shape_numel(shape_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* data() const { return data_; }
  template <typename T>
  T* data_as() const { return static_cast<T*>(data_); }

  // View of rows [begin, begin + count) along dim 0.
  Tensor rows(int64_t begin, int64_t count) const;
  // Same data, another shape with the same element count.
  Tensor reshaped(Shape shape) const;

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  Device device_ = Device::Cpu;
  Shape shape_;
};

// A host fp32 tensor with its own storage (used by the CPU backend and for host-side results).
Tensor host_tensor(const Shape& shape);

}  // namespace divprune

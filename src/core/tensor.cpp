#include "core/tensor.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/errors.hpp"

namespace divprune {

std::string shape_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor Tensor::rows(int64_t begin, int64_t count) const {
  EXPECTS(rank() >= 1 && begin >= 0 && count >= 0 && begin + count <= shape_[0],
          fmt::format("rows({}, {}) of {}", begin, count, shape_string(shape_)));
  Shape shape = shape_;
  shape[0] = count;
  int64_t row_elems = shape_[0] == 0 ? 0 : numel() / shape_[0];
  char* base = static_cast<char*>(data_) + static_cast<size_t>(begin * row_elems) * dtype_size(dtype_);
  return Tensor(storage_, base, dtype_, device_, std::move(shape));
}

Tensor Tensor::reshaped(Shape shape) const {
  EXPECTS(shape_numel(shape) == numel(),
          fmt::format("reshape {} -> {}", shape_string(shape_), shape_string(shape)));
  return Tensor(storage_, data_, dtype_, device_, std::move(shape));
}

Tensor host_tensor(const Shape& shape) {
  size_t n = static_cast<size_t>(shape_numel(shape));
  std::shared_ptr<float[]> storage(new float[n > 0 ? n : 1]());
  float* data = storage.get();
  return Tensor(std::shared_ptr<void>(storage, data), data, DType::F32, Device::Cpu, shape);
}

}  // namespace divprune

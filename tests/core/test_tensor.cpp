// Tensor handles: views share storage, rows() and reshaped() check their bounds.
#include <gtest/gtest.h>

#include <numeric>

#include "core/errors.hpp"
#include "core/tensor.hpp"

namespace divprune {
namespace {

Tensor iota_tensor(const Shape& shape) {
  Tensor t = host_tensor(shape);
  std::iota(t.data_as<float>(), t.data_as<float>() + t.numel(), 0.0f);
  return t;
}

TEST(Tensor, ShapeHelpers) {
  EXPECT_EQ(shape_string({2, 32, 64}), "[2, 32, 64]");
  EXPECT_EQ(shape_string({}), "[]");
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({5, 0}), 0);
}

TEST(Tensor, HostTensorIsZeroedFp32) {
  Tensor t = host_tensor({3, 5});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.device(), Device::Cpu);
  EXPECT_EQ(t.rank(), 2u);
  EXPECT_EQ(t.dim(0), 3);
  EXPECT_EQ(t.dim(1), 5);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.bytes(), 60u);
  for (int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.data_as<float>()[i], 0.0f);
  EXPECT_FALSE(Tensor().defined());
  EXPECT_TRUE(host_tensor({0, 4}).defined());  // empty tensors still have a (dummy) allocation
}

TEST(Tensor, RowsIsAViewOfConsecutiveRows) {
  Tensor t = iota_tensor({4, 3});
  Tensor middle = t.rows(1, 2);
  EXPECT_EQ(middle.shape(), (Shape{2, 3}));
  EXPECT_EQ(middle.data_as<float>(), t.data_as<float>() + 3);
  EXPECT_EQ(middle.data_as<float>()[0], 3.0f);
  EXPECT_EQ(middle.data_as<float>()[5], 8.0f);
  middle.data_as<float>()[0] = -1.0f;  // writes through to the original (how the KV cache is filled)
  EXPECT_EQ(t.data_as<float>()[3], -1.0f);
  EXPECT_EQ(t.rows(0, 4).data(), t.data());
  EXPECT_EQ(t.rows(4, 0).numel(), 0);  // empty view at the end is allowed
  EXPECT_EQ(t.rows(3, 1).data_as<float>()[2], 11.0f);
}

TEST(Tensor, RowsOfHigherRankTensors) {
  Tensor cache = iota_tensor({5, 2, 4});  // (T, Hkv, D)
  Tensor step = cache.rows(3, 1);
  EXPECT_EQ(step.shape(), (Shape{1, 2, 4}));
  EXPECT_EQ(step.data_as<float>()[0], 24.0f);
  Tensor nested = cache.rows(1, 3).rows(1, 2);  // a view of a view
  EXPECT_EQ(nested.data_as<float>(), cache.data_as<float>() + 2 * 8);
}

TEST(Tensor, RowsOutOfBoundsThrow) {
  Tensor t = iota_tensor({4, 3});
  EXPECT_THROW(t.rows(3, 2), InternalError);
  EXPECT_THROW(t.rows(-1, 1), InternalError);
  EXPECT_THROW(t.rows(0, -1), InternalError);
  EXPECT_THROW(t.rows(5, 0), InternalError);
  EXPECT_THROW(host_tensor({}).rows(0, 1), InternalError);  // a scalar has no rows
}

TEST(Tensor, ReshapedKeepsDataAndChecksCount) {
  Tensor t = iota_tensor({2, 6});
  Tensor r = t.reshaped({3, 2, 2});
  EXPECT_EQ(r.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(r.data(), t.data());
  EXPECT_EQ(r.rows(2, 1).data_as<float>()[0], 8.0f);
  EXPECT_THROW(t.reshaped({5, 2}), InternalError);
  EXPECT_THROW(t.reshaped({13}), InternalError);
}

TEST(Tensor, ViewsKeepStorageAlive) {
  Tensor view;
  {
    Tensor t = iota_tensor({8, 2});
    view = t.rows(6, 2).reshaped({4});
  }
  EXPECT_EQ(view.data_as<float>()[0], 12.0f);  // the original handle is gone, the storage is not
  EXPECT_EQ(view.data_as<float>()[3], 15.0f);
}

}  // namespace
}  // namespace divprune

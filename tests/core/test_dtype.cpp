// fp16/bf16 conversions: checkpoints are fp16/bf16 and base log-probs are stored as fp16, so both directions
// must be exact where exactness is possible and round-to-nearest-even otherwise.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.hpp"

namespace divprune {
namespace {

bool is_half_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

// The value of a finite or infinite half from its fields, computed in double without bit tricks.
double half_value(uint16_t h) {
  const int sign = (h & 0x8000u) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0x1f) return sign * std::numeric_limits<double>::infinity();
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(Dtype, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_name(DType::F32), "float32");
  EXPECT_EQ(dtype_name(DType::F16), "float16");
  EXPECT_EQ(dtype_name(DType::BF16), "bfloat16");
}

TEST(Dtype, HalfToFloatIsExactForEveryPattern) {
  int nans = 0;
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float f = half_to_float(h);
    if (is_half_nan(h)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << bits;
      ++nans;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), half_value(h)) << std::hex << bits;
    ASSERT_EQ(std::signbit(f), (h & 0x8000u) != 0) << std::hex << bits;  // -0 stays -0
  }
  EXPECT_EQ(nans, 2 * 1023);
}

TEST(Dtype, EveryNonNanHalfRoundTrips) {
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    if (is_half_nan(h)) {
      EXPECT_TRUE(is_half_nan(float_to_half(half_to_float(h)))) << std::hex << bits;  // NaN stays NaN
      continue;
    }
    ASSERT_EQ(float_to_half(half_to_float(h)), h) << std::hex << bits;
  }
}

TEST(Dtype, FloatToHalfRoundsToNearestEven) {
  // Around every midpoint between consecutive finite halves (positive and negative): just below rounds down,
  // just above rounds up, the midpoint itself goes to the even mantissa.
  for (uint32_t bits = 0; bits < 0x7bffu; ++bits) {
    for (uint16_t sign : {uint16_t{0}, uint16_t{0x8000}}) {
      const auto lo = static_cast<uint16_t>(bits | sign), hi = static_cast<uint16_t>((bits + 1) | sign);
      const float a = half_to_float(lo), b = half_to_float(hi);
      const float mid = static_cast<float>((static_cast<double>(a) + b) / 2);  // exact: needs one more bit
      ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(a) + b) / 2);
      const float toward_lo = std::nextafter(mid, a), toward_hi = std::nextafter(mid, b);
      ASSERT_EQ(float_to_half(toward_lo), lo) << std::hex << bits;
      ASSERT_EQ(float_to_half(toward_hi), hi) << std::hex << bits;
      ASSERT_EQ(float_to_half(mid), (bits & 1u) ? hi : lo) << std::hex << bits;
    }
  }
}

TEST(Dtype, FloatToHalfEdges) {
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);                   // largest finite half
  EXPECT_EQ(float_to_half(65519.996f), 0x7bff);                 // below the midpoint to 65536
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);                   // midpoint, ties to even = overflow
  EXPECT_EQ(float_to_half(1e10f), 0x7c00);
  EXPECT_EQ(float_to_half(-1e10f), 0xfc00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_TRUE(is_half_nan(float_to_half(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);       // smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);       // half of it: ties to even = 0
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -26)), 0x0001);       // 0.75 of it rounds up
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -30)), 0x0000);       // underflow
  EXPECT_EQ(float_to_half(std::ldexp(1023.0f, -24)), 0x03ff);    // largest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);       // smallest normal
  EXPECT_EQ(float_to_half(std::ldexp(2047.5f, -25)), 0x0400);    // rounds up from subnormal into normal
}

TEST(Dtype, Bf16ToFloat) {
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc000), -2.0f);
  EXPECT_EQ(bf16_to_float(0x4049), 3.140625f);
  EXPECT_TRUE(std::isinf(bf16_to_float(0x7f80)));
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7fc0)));
  for (uint32_t bits = 0; bits <= 0xffffu; ++bits) {  // the upper half of a float's bits, exactly
    const float f = bf16_to_float(static_cast<uint16_t>(bits));
    uint32_t word;
    std::memcpy(&word, &f, 4);
    ASSERT_EQ(word, bits << 16);
  }
}

}  // namespace
}  // namespace divprune

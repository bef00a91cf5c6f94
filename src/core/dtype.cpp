#include "core/dtype.hpp"

#include <cmath>

#include "core/enum_names.hpp"

namespace divprune {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

namespace {
// In this file rather than the header: dtype.hpp is shared with the CUDA sources.
constexpr auto kDTypeNames =
    enum_names<DType>("dtype", {{DType::F32, "float32"}, {DType::F16, "float16"}, {DType::BF16, "bfloat16"},
                                {DType::F32, "fp32"}, {DType::F32, "float"}, {DType::F16, "fp16"},
                                {DType::F16, "half"}, {DType::BF16, "bf16"}});
static_assert(kDTypeNames.names_unique());
}  // namespace

std::string_view dtype_name(DType dtype) { return kDTypeNames.name(dtype); }

DType parse_dtype(std::string_view name, std::string_view where) { return kDTypeNames.parse(name, where); }

uint16_t float_to_half(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00u | (abs_bits > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs_bits >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (abs_bits < 0x38800000u) {  // subnormal half (or zero): value / 2^-24, rounded to nearest even
    float magnitude;
    std::memcpy(&magnitude, &abs_bits, sizeof(magnitude));
    float scaled = std::nearbyint(magnitude * 16777216.0f);  // default rounding mode: ties to even
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(scaled));
  }
  uint32_t exponent = ((abs_bits >> 23) - 127 + 15) << 10;
  uint32_t mantissa = (abs_bits >> 13) & 0x3ffu;
  uint32_t rest = abs_bits & 0x1fffu;
  uint32_t half = exponent | mantissa;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // carry may roll into the exponent: correct
  return static_cast<uint16_t>(sign | half);
}

}  // namespace divprune

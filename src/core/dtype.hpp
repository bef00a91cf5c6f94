#pragma once
// Element types found in checkpoints and used on devices. Checkpoints are converted on load: the CPU
// backend computes in fp32, the CUDA backend in bf16 with fp32 accumulation.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace divprune {

enum class DType { F32, F16, BF16 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "float32", "float16", "bfloat16"
// The dtype a name denotes: the names above and the aliases fp32/float, fp16/half, bf16. InputError
// "where: unknown dtype \"x\" (known: ...)" otherwise.
DType parse_dtype(std::string_view name, std::string_view where);

// IEEE half -> float, exact for every finite value, subnormals and infinities.
inline float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exponent = 127 - 15 + 1;
      while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --exponent;
      }
      mantissa &= 0x3ffu;
      bits = sign | (exponent << 23) | (mantissa << 13);
    }
  } else if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

inline float bf16_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof(out));
  return out;
}

// float -> IEEE half, round to nearest even (used to store base log-probs compactly).
uint16_t float_to_half(float value);

}  // namespace divprune

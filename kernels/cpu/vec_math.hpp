#pragma once
// Small vectorisable math used by CPU kernels. std::exp does not vectorise without -ffast-math, and the
// log-softmax over a 32000-token vocabulary per scored token is a large share of a perplexity run.
#include <bit>
#include <cmath>
#include <cstdint>

namespace divprune {

// exp(x) for x <= 0 (x = logit - max), relative error ~2e-7; below -87 returns ~0 (underflow, as expf).
inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;  // ln2 split in two parts (Cephes) keeps r exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return y * std::bit_cast<float>(bits);
}

// silu(x) = x * sigmoid(x), through exp of a non-positive argument so it neither overflows nor needs std::exp.
inline float silu(float x) {
  const float e = exp_nonpositive(x >= 0.0f ? -x : x);  // exp(-|x|)
  const float sigmoid = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  return x * sigmoid;
}

}  // namespace divprune

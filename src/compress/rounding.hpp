#pragma once
// How the operators turn a fraction of n into a count: round half to even (std::nearbyint in the default
// rounding mode), as Python's round and torch.round do, so counts match the reference implementations.
#include <cmath>
#include <cstdint>

namespace divprune {

inline int64_t round_count(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

}  // namespace divprune

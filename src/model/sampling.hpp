#pragma once
// Ancestral sampling from the model, used to make evaluation text for the synthetic model. Sampling uses the
// Gumbel-max trick with noise that is a pure function of (seed, sequence, position, token id): each
// tensor-parallel rank perturbs only its vocab slice and a distributed argmax picks the sample, so no rank
// needs the full distribution and the result is identical for every tp.
#include <cstdint>
#include <vector>

#include "model/llama.hpp"

namespace divprune {

// `count` sequences of `length` tokens, each sampled after BOS (not included). Collective over the tp group.
std::vector<std::vector<int32_t>> sample_sequences(LlamaModel& model, int64_t count, int64_t length, uint64_t seed);

}  // namespace divprune

#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/llama.hpp"

namespace divprune {

// Greedy decoding with the KV cache: the prompt is run once, then one token per step. Returns the
// `count` new ids (argmax ties toward the lower id). Collective over the tensor-parallel group.
std::vector<int32_t> greedy_generate(LlamaModel& model, std::span<const int32_t> prompt, int64_t count);

}  // namespace divprune

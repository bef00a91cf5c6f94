#pragma once
// Full logits are only assembled when a user asks to write them (divprune logits): every other path works
// on vocab slices. This gathers a replica's slices onto its tp rank 0.
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"
#include "model/llama.hpp"
#include "parallel/topology.hpp"

namespace divprune {

// logits_local: this rank's (n, V_local) slice. Returns (n, V) row-major on tp rank 0, empty elsewhere.
std::vector<float> gather_vocab_slices(LlamaModel& model, const Tensor& logits_local, const Topology& topology);

}  // namespace divprune

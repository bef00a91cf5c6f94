#pragma once
// Model weights in two forms:
//  - HostWeights: the pristine fp32 weights of this rank's shard, read once from the checkpoint. Compression
//    plans never modify them (DESIGN: "pristine weights stay"); they build a working copy instead.
//  - DeviceWeights: the working copy on a backend, in the backend's compute dtype, used by the forward.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"
#include "model/checkpoint.hpp"
#include "model/shard.hpp"

namespace divprune {

class Backend;

// The seven linear projections of a decoder layer, in the order used by plans and feature vectors.
enum class Component { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kNumComponents = 7;
constexpr std::array<Component, kNumComponents> kAllComponents = {Component::Q,    Component::K,  Component::V,
                                                                  Component::O,    Component::Gate, Component::Up,
                                                                  Component::Down};
std::string_view component_name(Component component);  // "q", "k", "v", "o", "gate", "up", "down"
// Hugging Face tensor name of a layer's projection.
std::string component_tensor_name(int64_t layer, Component component);
// Row-parallel components (o, down) are split by columns; the others by rows.
inline bool is_row_parallel(Component c) { return c == Component::O || c == Component::Down; }

// A row-major [rows, cols] fp32 matrix (one rank's shard of an [out, in] weight).
struct HostMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> data;
};

struct HostLayer {
  std::vector<float> attn_norm;                        // (C) input_layernorm
  std::vector<float> ffn_norm;                         // (C) post_attention_layernorm
  std::array<HostMatrix, kNumComponents> linear;       // q (H*D, C) k,v (Hkv*D, C) o (C, H*D) gate,up (F, C) down (C, F)
};

struct HostWeights {
  ShardLayout layout;
  HostMatrix embed;                 // (V_local, C)
  HostMatrix lm_head;               // (V_local, C); a copy of embed's slice when embeddings are tied
  std::vector<float> final_norm;    // (C)
  std::vector<HostLayer> layers;    // (L)
};

// Reads this rank's shard. Every tensor's full shape is checked against the config first: a mismatch is an
// InputError naming the file, the tensor, the expected and the found shape.
HostWeights load_host_weights(const Checkpoint& checkpoint, const ShardLayout& layout);

struct DeviceLayer {
  Tensor attn_norm, ffn_norm;
  std::array<Tensor, kNumComponents> linear;
  bool removed = false;  // LayerChop: the layer contributes nothing, the residual stream passes through
};

struct DeviceWeights {
  Tensor embed, lm_head, final_norm;
  std::vector<DeviceLayer> layers;
};

DeviceWeights upload_weights(Backend& backend, const HostWeights& host);
// Replaces one projection's working copy (after a compression operator rewrote the host values).
void upload_linear(Backend& backend, const HostMatrix& values, Tensor& target);

}  // namespace divprune

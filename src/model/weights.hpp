#pragma once
// Model weights in two forms:
//  - HostWeights: the pristine fp32 weights of this rank's shard, read once from the checkpoint. Compression
//    plans never modify them (DESIGN: "pristine weights stay"); they build a working copy instead.
//  - DeviceWeights: the working copy on a backend, in the backend's compute dtype, used by the forward.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/enum_names.hpp"
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
inline constexpr auto kComponentNames =
    enum_names<Component>("component", {{Component::Q, "q"}, {Component::K, "k"}, {Component::V, "v"},
                                        {Component::O, "o"}, {Component::Gate, "gate"}, {Component::Up, "up"},
                                        {Component::Down, "down"}});
static_assert(kComponentNames.names_unique());
constexpr std::string_view component_name(Component component) { return kComponentNames.name(component); }
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

// The seven linear projections of a layer: by name where the code means one of them (the forward), by
// Component where it visits all seven (loading, compression).
template <class M>
struct Projections {
  M q, k, v;   // q (H*D, C), k and v (Hkv*D, C)
  M o;         // (C, H*D)
  M gate, up;  // (F, C)
  M down;      // (C, F)

  M& operator[](Component c) { return const_cast<M&>(std::as_const(*this)[c]); }
  const M& operator[](Component c) const {
    switch (c) {
      case Component::Q: return q;
      case Component::K: return k;
      case Component::V: return v;
      case Component::O: return o;
      case Component::Gate: return gate;
      case Component::Up: return up;
      case Component::Down: return down;
    }
    return q;  // unreachable: every Component is listed
  }
};

struct HostLayer {
  std::vector<float> attn_norm;    // (C) input_layernorm
  std::vector<float> ffn_norm;     // (C) post_attention_layernorm
  Projections<HostMatrix> linear;  // this rank's shards
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
  Projections<Tensor> linear;
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

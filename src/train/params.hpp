#pragma once
// The trainable parameters of a (possibly compressed) tp = 1 model as one flat array, so that gradient
// reduction, clipping and AdamW are loops over one buffer. ParamLayout gives every tensor's offset.
//  - removed layers (LayerChop) have no parameters here: they stay removed, and neither weight decay nor the
//    optimizer can touch them;
//  - tied embeddings: lm_head's offset is embed's, so both uses add into one gradient;
//  - the gradient mask: 1 for every parameter except the entries of the seven linears that are exactly zero in
//    the working copy (pruned by a plan), which must stay zero: their gradient is masked, so AdamW's moments
//    and update stay 0 and decoupled weight decay of a zero is zero.
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "model/config.hpp"
#include "model/weights.hpp"

namespace divprune::train {

struct LayerOffsets {
  bool removed = false;
  int64_t attn_norm = -1;                          // (C)
  int64_t ffn_norm = -1;                           // (C)
  std::array<int64_t, kNumComponents> linear{};    // q (H*D, C), k/v (Hkv*D, C), o (C, H*D), gate/up (F, C), down (C, F)
};

struct ParamLayout {
  ModelConfig config;
  int64_t embed = 0;       // (V, C)
  int64_t final_norm = 0;  // (C)
  int64_t lm_head = 0;     // (V, C); == embed when embeddings are tied
  std::vector<LayerOffsets> layers;
  int64_t total = 0;

  // Rows and columns of a layer's projection.
  std::array<int64_t, 2> linear_shape(Component c) const;
};

// removed[l] (size L or empty): layer l has no parameters and is skipped by the forward and backward.
ParamLayout make_param_layout(const ModelConfig& config, const std::vector<bool>& removed);

// Copies the working copy (tp = 1 HostWeights) into a flat array, and back (removed layers untouched).
std::vector<float> pack_params(const ParamLayout& layout, const HostWeights& weights);
void unpack_params(const ParamLayout& layout, std::span<const float> flat, HostWeights& weights);

// 1 = trainable, 0 = pruned (an exact zero of a linear).
std::vector<uint8_t> make_gradient_mask(const ParamLayout& layout, std::span<const float> flat);

// Whether decoupled weight decay applies: matrices (embedding, linears, lm_head) yes, RMSNorm gains no.
std::vector<uint8_t> make_decay_mask(const ParamLayout& layout);

}  // namespace divprune::train

#pragma once
// The predictor's input row for a plan: the plan's feature vector (compress/FEATURES.md) followed by aggregates a
// tree ensemble fit on a few hundred pairs cannot assemble from 50·L sparse columns on its own:
//   layer{l}.linear_sparsity   share of layer l's linear parameters removed (by prunes or by removing the layer)
//   {comp}.mean_sparsity       mean over layers of the effective sparsity of component comp (removed layer: 1)
//   int8_share                 share of the kept components quantized to int8
//   removed_layers             number of removed layers
// The archive stores the plan vector only (/plans/<id>/features); the aggregates are recomputed from it, so
// archives written before they existed train the same predictor.
#include <span>
#include <string>
#include <vector>

#include "model/config.hpp"
#include "search/predictor.hpp"

namespace divprune {

// With `aggregates` false (train.aggregate_features: false) the row is the plan vector alone.
// `calibrated`: the plan vector has the calibrated tail (compress/FEATURES.md); the aggregates are those of its
// original block either way.
std::vector<std::string> predictor_feature_names(const ModelConfig& config, bool aggregates = true, bool calibrated = false);
// `plan_features` followed by its aggregates.
std::vector<float> predictor_row(std::span<const float> plan_features, const ModelConfig& config, bool aggregates = true,
                                 bool calibrated = false);

}  // namespace divprune

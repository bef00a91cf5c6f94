#include "search/predictor_features.hpp"

#include <fmt/format.h>

#include <array>

#include "compress/plan.hpp"
#include "core/errors.hpp"

namespace divprune {

std::vector<std::string> predictor_feature_names(const ModelConfig& config, bool aggregates, bool calibrated) {
  std::vector<std::string> names = plan_feature_names(config, calibrated);
  if (!aggregates) return names;
  for (int64_t l = 0; l < config.num_layers; ++l) names.push_back(fmt::format("layer{}.linear_sparsity", l));
  for (Component c : kAllComponents) names.push_back(fmt::format("{}.mean_sparsity", component_name(c)));
  names.emplace_back("int8_share");
  names.emplace_back("removed_layers");
  return names;
}

std::vector<float> predictor_row(std::span<const float> features, const ModelConfig& config, bool aggregates,
                                 bool calibrated) {
  const int64_t layers = config.num_layers;
  if (static_cast<int64_t>(features.size()) != plan_feature_count(config, calibrated))
    throw InternalError(fmt::format("predictor_row: {} plan features, expected {}", features.size(),
                                    plan_feature_count(config, calibrated)));
  std::vector<float> row(features.begin(), features.end());
  if (!aggregates) return row;
  std::array<double, kNumComponents> type_sum{};
  double int8 = 0.0, kept = 0.0, removed = 0.0;
  for (int64_t l = 0; l < layers; ++l) {
    const float* block = features.data() + l * kFeaturesPerLayer;
    const bool gone = block[kFeaturesPerLayer - 1] > 0.5f;
    removed += gone;
    double pruned = 0.0, total = 0.0;
    for (Component c : kAllComponents) {
      const int ci = static_cast<int>(c);
      const auto shape = component_shape(c, config);
      const double n = static_cast<double>(shape[0] * shape[1]);
      const double s = gone ? 1.0 : block[ci * kFeaturesPerComponent];
      pruned += s * n;
      total += n;
      type_sum[static_cast<size_t>(ci)] += s;
      if (!gone) {
        kept += 1.0;
        int8 += block[ci * kFeaturesPerComponent + kFeaturesPerComponent - 1] > 0.5f;
      }
    }
    row.push_back(static_cast<float>(pruned / total));
  }
  for (double sum : type_sum) row.push_back(static_cast<float>(sum / static_cast<double>(layers)));
  row.push_back(static_cast<float>(kept > 0 ? int8 / kept : 0.0));
  row.push_back(static_cast<float>(removed));
  return row;
}

}  // namespace divprune

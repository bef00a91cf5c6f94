#include "compress/storage.hpp"

#include <algorithm>

namespace divprune {

int64_t component_storage_bytes(const CompressionPlan& plan, int64_t layer, Component component, const ModelConfig& config) {
  if (plan.layers[static_cast<size_t>(layer)].removed) return 0;
  const ComponentPlan& cp = plan.at(layer, component);
  const auto [rows, cols] = component_shape(component, config);
  const int64_t entries = rows * cols;
  const int64_t pruned = cp.prune ? pruned_entries(*cp.prune, component, config) : 0;
  const int64_t bitmap = (entries + 7) / 8;
  if (has_grid(cp.quant)) {
    const QuantParams& q = cp.quant_params;
    const int64_t bits = q.bits;
    const int64_t groups = q.group_size > 0 ? cols / q.group_size : 1;
    int64_t meta = 2 * rows * groups;                            // fp16 scales
    if (!q.sym) meta += rows * ((groups * bits + 7) / 8);        // zero points at `bits` bits
    if (q.act_order && groups > 1) meta += 4 * cols;             // g_idx: the group of every column
    const int64_t dense = rows * ((cols * bits + 7) / 8) + meta;
    if (pruned == 0) return dense;
    return std::min(dense, bitmap + ((entries - pruned) * bits + 7) / 8 + meta);
  }
  const bool int8 = cp.quant == QuantMethod::Int8;
  const int64_t value_bytes = int8 ? 1 : 2;
  const int64_t scales = int8 ? 2 * rows : 0;
  const int64_t dense = entries * value_bytes + scales;
  if (pruned == 0) return dense;
  const int64_t sparse = bitmap + (entries - pruned) * value_bytes + scales;
  return std::min(dense, sparse);
}

StorageBytes plan_storage_bytes(const CompressionPlan& plan, const ModelConfig& config) {
  StorageBytes s;
  s.dense_fp16 = 2 * config.num_layers * config.layer_linear_parameters();
  for (int64_t l = 0; l < config.num_layers; ++l)
    for (Component c : kAllComponents) s.stored += component_storage_bytes(plan, l, c, config);
  return s;
}

}  // namespace divprune

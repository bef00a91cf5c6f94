#pragma once
// Bytes a compression plan's linear projections take when stored (issue 17, "Budgets": a bytes budget under
// which int8 is a real trade-off instead of free). The storage format, exactly:
//   - a value is fp16 (2 bytes), or int8 (1 byte) for a component in int8; an int8 component also stores one
//     fp16 scale per output row (compress/operators.hpp: s = max|w| / 127 per row): 2 · rows bytes;
//   - a component with pruned entries may be stored sparse: a bitmap of 1 bit per entry of the full matrix
//     (ceil(rows · cols / 8) bytes, row-major) followed by the kept values in order; it is stored the cheaper
//     way, dense (every entry, zeros included) or sparse, so a little pruning never costs more than none;
//   - a component quantized by a grid quantizer (gptq, rtn; compress/calibrated_operators.hpp) stores its values at
//     `bits` bits each, packed row by row (rows · ceil(cols · bits / 8) bytes dense), plus per group of a row
//     (cols / group_size groups, 1 for group_size −1) one fp16 scale, and for an asymmetric grid (sym: false) one
//     zero point at `bits` bits packed per row (rows · ceil(groups · bits / 8) bytes; a symmetric grid's zero
//     point is the constant 2^(bits−1), not stored); with act_order and more than one group per row the column
//     order is stored too, one int32 per column (GPTQ's g_idx); sparse, its kept values are packed at `bits`
//     bits one after the other (ceil(kept · bits / 8) bytes) after the bitmap;
//   - a removed layer stores nothing.
// Embeddings, norms and lm_head are outside (the budget is over the searched linear projections, like linear
// sparsity). The reference size is the dense fp16 model: 2 bytes per linear entry.
#include <cstdint>

#include "compress/plan.hpp"

namespace divprune {

struct StorageBytes {
  int64_t dense_fp16 = 0;  // 2 · all linear entries: the uncompressed reference
  int64_t stored = 0;      // the plan in the format above
  double fraction() const { return dense_fp16 > 0 ? static_cast<double>(stored) / static_cast<double>(dense_fp16) : 0.0; }
};

// One component of `plan` (0 for a removed layer).
int64_t component_storage_bytes(const CompressionPlan& plan, int64_t layer, Component component, const ModelConfig& config);
StorageBytes plan_storage_bytes(const CompressionPlan& plan, const ModelConfig& config);

}  // namespace divprune

#pragma once
// The compression operators, applied to a rank's shard of the pristine fp32 weights (compress/apply.hpp builds
// the working copy of a plan from them).
//
// Exact definitions (weights are [out, in] matrices; indices are those of the full, unsharded matrix):
//   magnitude      zero exactly round(s·n) entries of smallest |w| of the matrix; ties: lower flat index
//                  (row·in + col) first.
//   magnitude_row  the same inside every output row: round(s·in) entries per row; ties: lower column first.
//   2:4            in every group of 4 consecutive entries of a row (columns 4g..4g+3), zero the 2 of smallest
//                  |w|; ties: lower column first.
//   heads          score of KV head g = sum of w² over the q rows of its query heads, its k and v rows and the
//                  o columns of its query heads (pristine weights). The round(s·Hkv) lowest-scored KV heads
//                  (ties: lower index) are pruned: q rows / o columns of their query heads and their k / v rows
//                  are zeroed, in each component that names the heads method (the ranking is shared).
//   channels       score of channel f = sum of w² over gate row f, up row f and down column f (pristine). The
//                  round(s·F) lowest (ties: lower index) are zeroed: gate/up rows, down columns.
//   int8           per output row: s = max|w| / 127, w' = clamp(round_half_even(w / s), -127, 127) · s, in fp32;
//                  a row of zeros stays zero. Applied after the prune of the same component.
//   drop_layers    DeviceLayer::removed: the residual stream passes the layer unchanged.
//
// Tensor parallelism: every statistic that spans shards is computed globally through the Communicator, so the
// working copy on each rank is exactly (bit for bit) the matching slice of the tp = 1 working copy:
//   - magnitude selects the k smallest (|w| bits, global flat index) keys with a distributed radix select:
//     histograms of 16-bit digits of the keys, summed over ranks as doubles (exact counts). The flat index in
//     the key makes the keys unique, which is the tie-break, and handles row-parallel (column-block) shards whose
//     flat indices interleave across ranks.
//   - magnitude_row: rows of column-parallel shards are whole (local); rows of row-parallel o/down are split
//     across ranks and use the same select per row (8-bit digits, one histogram per row).
//   - int8 scale of row-parallel o/down: all-reduce max over the row pieces.
//   - 2:4 groups never straddle shards: the plan is rejected when tp leaves a column count per shard that is
//     not a multiple of 4 (compress/plan.hpp: validate_plan for that tp); groups are then local.
//   - heads/channels scores are local (a KV head with its query heads, or a channel, lives on one rank) and are
//     combined with an all-reduce sum of zero-padded vectors (exact).
// Every function taking a Communicator is collective over it: all ranks of the group call it with the same
// plan, in the same order.
#include <cstdint>
#include <span>
#include <vector>

#include "compress/plan.hpp"
#include "core/communicator.hpp"
#include "kernels/backend.hpp"
#include "model/config.hpp"
#include "model/weights.hpp"

namespace divprune {

// Where one rank's block of a projection sits inside the full [out, in] matrix.
struct ShardGeometry {
  int64_t full_rows = 0, full_cols = 0;  // [out, in] of the whole matrix
  int64_t row0 = 0, col0 = 0;            // offset of the local block
  int64_t rows = 0, cols = 0;            // local block
  bool rows_whole() const { return cols == full_cols; }  // every local row is a complete output row
};
ShardGeometry shard_geometry(Component component, const ModelConfig& config, const ShardLayout& layout);

// The operators, in place on a local shard `m` whose place in the full matrix is `g`.
void prune_magnitude(HostMatrix& m, const ShardGeometry& g, double sparsity, Communicator& comm);
void prune_magnitude_rows(HostMatrix& m, const ShardGeometry& g, double sparsity, Communicator& comm);
void prune_two_four(HostMatrix& m, const ShardGeometry& g);
void quantize_int8_rows(HostMatrix& m, const ShardGeometry& g, Communicator& comm);

// Global KV head indices (resp. channel indices) in pruning order: lowest score first, ties to the lower index.
std::vector<int64_t> rank_kv_heads(const HostLayer& layer, const ModelConfig& config, const ShardLayout& layout,
                                   Communicator& comm);
std::vector<int64_t> rank_channels(const HostLayer& layer, const ModelConfig& config, const ShardLayout& layout,
                                   Communicator& comm);
// Zeroes the parts of `component` (q, k, v or o) that belong to the given global KV heads.
void zero_kv_heads(HostMatrix& m, Component component, std::span<const int64_t> kv_heads, const ModelConfig& config,
                   const ShardLayout& layout);
// Zeroes the gate/up rows or down columns of the given global channels.
void zero_channels(HostMatrix& m, Component component, std::span<const int64_t> channels, const ShardLayout& layout);

}  // namespace divprune

#pragma once
// The calibrated operators, written from the papers:
//   wanda      (Sun et al. 2023)      score |W_ij|·‖X_j‖₂; per output row zero the round(s·in) lowest scores, or
//                                     with an N:M pattern the M−N lowest of every M consecutive columns (keep N).
//   sparsegpt  (Frantar & Alistarh 2023) OBS reconstruction, Algorithm 1 of the paper.
//   gptq       (Frantar et al. 2022)  OBS-driven quantization, Algorithm 1 of the paper.
//   rtn                               round to nearest on the same grid as gptq (its uncalibrated baseline).
// Ties (equal scores) go to the lower column. Everything is computed in double and rounded to fp32 at the end;
// the result is dequantized fp32 (as int8 is today).
//
// Shared OBS set-up (sparsegpt, gptq): H = 2·G with G = Σ_t x_t x_tᵀ (compress/calibration.hpp); a dead input
// (H_jj = 0) gets H_jj = 1 and its weight column is zeroed (it never contributes); damping λ = damp·mean(diag H)
// (default 1%) is added to the diagonal; U is the upper Cholesky factor of H⁻¹ (H⁻¹ = UᵀU), in processing order.
// A row w is then processed column by column, in lazy blocks of B columns (default 128): for column j,
//   q_j = target of w_j (0 if pruned, the grid value if quantized), e_j = (w_j − q_j) / U_jj, w_j = q_j,
//   w_k −= e_j·U_jk for the later columns k of the block; after the block, w_k −= Σ_j e_j·U_jk for the rest.
// sparsegpt mask selection is adaptive: at the start of each block (unstructured) the round(s·width) entries of
//   the row with the lowest w_j²/U_jj² (current values) in the block are pruned; with N:M, at the start of each
//   group of M columns the M−N lowest of the group. The selection is per output row (every row keeps the same
//   sparsity, as in Wanda's per-output comparison), which makes rows independent of each other.
// gptq grid (bits b, maxq = 2^b − 1), from the values of a group of the row: xmin = min(0, min v), xmax = max(0,
//   max v); asymmetric: scale = (xmax − xmin)/maxq, zero = round(−xmin/scale); symmetric: m = max(|v|),
//   scale = m/(2^(b−1) − 1), zero = 2^(b−1) (so ±m land exactly on the grid: 2·m/maxq would put −m on a rounding
//   tie that a last-bit difference flips); an all-zero group has scale 1. q(x) = scale·(clamp(round(x/scale) +
//   zero, 0, maxq) − zero) (round half to even); 0 always maps to 0. Groups are group_size consecutive columns in
//   processing order (gptq: parameters taken from the current values when the group's first column is reached;
//   rtn: from the original values), group_size −1 = the whole row. act_order processes the columns by decreasing
//   diag(H) (ties: lower column first). Entries exactly zero before gptq (a prune of the same component) stay zero.
//
// Every row is processed independently and identically, so a column-parallel shard (whole rows) is compressed
// locally; a row-parallel o/down shard is all-gathered into the full matrix, compressed whole and sliced, which
// makes the working copies at any tp bit-identical slices of tp = 1 (given the same statistics).
#include <cstdint>
#include <map>
#include <utility>
#include <span>
#include <vector>

#include "compress/calibration.hpp"
#include "compress/operators.hpp"
#include "compress/plan.hpp"

namespace divprune {

struct NmPattern {
  int n = 0, m = 0;  // keep n of every m consecutive columns; m = 0: unstructured
  bool structured() const { return m > 0; }
};

struct GridSpec {
  int bits = 4;
  int64_t group_size = 128;  // -1: the whole row
  bool sym = true;
};

// The OBS factor of one input: U (d, d) upper triangular in processing order, the order, and the dead inputs.
struct ObsFactor {
  int64_t dim = 0;
  std::vector<double> u;      // (d, d) row-major, upper triangle used
  std::vector<int64_t> order; // processing position -> column
  std::vector<uint8_t> dead;  // per column (original order)
};
// act_order: columns by decreasing diag(H); damp: fraction of the mean diagonal added to it.
ObsFactor obs_factor(const InputStats& stats, double damp, bool act_order);

// OBS factors computed once per (input statistics, act_order) and shared by the components reading that input
// (q, k, v; gate, up): the factor is the O(d³) part of sparsegpt / gptq.
class ObsCache {
 public:
  const ObsFactor& get(const InputStats& stats, bool act_order);

 private:
  std::map<std::pair<const InputStats*, bool>, ObsFactor> factors_;
};

// In-place operators on rows of full width (any subset of the output rows: rows are independent).
void wanda_rows(HostMatrix& w, const InputStats& stats, double sparsity, NmPattern nm);
void sparsegpt_rows(HostMatrix& w, const ObsFactor& f, double sparsity, NmPattern nm, int64_t block = 128);
void gptq_rows(HostMatrix& w, const ObsFactor& f, const GridSpec& grid, int64_t block = 128);
void rtn_rows(HostMatrix& w, const GridSpec& grid);

// The calibrated prune / quantization of a component plan on a shard `m` at `g` (collective over `comm` for
// row-parallel shards). Does nothing for the uncalibrated methods (compress/operators.hpp handles them).
void apply_calibrated_prune(HostMatrix& m, const ShardGeometry& g, const PruneSpec& prune, const InputStats& stats,
                            ObsCache& cache, Communicator& comm);
void apply_calibrated_quant(HostMatrix& m, const ShardGeometry& g, const ComponentPlan& cp, const InputStats& stats,
                            ObsCache& cache, Communicator& comm);

}  // namespace divprune

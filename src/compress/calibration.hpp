#pragma once
// Calibration statistics of the calibrated operators (compress/calibrated_operators.hpp), "cached" mode: the
// statistics of every linear projection's input are collected once, from the BASE (uncompressed) model, and
// reused by every plan (the reference algorithms instead calibrate layer l on the outputs of the already
// compressed layers before it, "sequential" mode: compress/apply.hpp apply_plan_sequential, one forward pass
// per layer).
//
// Calibration data: `sequences` windows of `length` tokens of a text file, tokenised whole; window starts are
// drawn with a std::mt19937_64 seeded with `seed` as start = draw mod (tokens - length + 1), so the windows are
// the same on every platform. A text shorter than one window is an InputError (exit 2).
//
// Per decoder layer four inputs (model/llama.hpp LinearInput): attn (q, k, v read it), attn_out (o), mlp (gate,
// up), mlp_act (down). For each the Gram matrix G = Σ_t x_t x_tᵀ over all calibration tokens (double), whose
// diagonal is the per-column Σ‖X_j‖² that Wanda needs; SparseGPT / GPTQ use H = 2G.
//
// Tensor parallelism: the column-parallel q/k/v/gate/up see the full input on every rank; the row-parallel o/down
// see only their local columns, but SparseGPT / GPTQ process a row over its FULL input (the operators compute a
// row-parallel matrix whole and keep the shard, compress/calibrated_operators.hpp), so their inputs are
// all-gathered across the group while collecting and every rank keeps the full Gram matrices. The statistics are
// bit-identical at every tp: at tp > 1 the pass computes the row-parallel products o/down like column-parallel
// ones (each rank C/tp output rows of the full weight times the full input, then all-gathered) instead of summing
// partial products in an all-reduce, whose tp-dependent order changed the last bits of every later activation
// (and so GPTQ's rounding decisions: 4th-decimal differences of a gptq plan's perplexity between tp 1 and 2). Given
// equal statistics the working copies are bit-identical slices of tp = 1 (compress_tp).
//
// Memory (double, full Gram matrices replicated on every rank): per layer 3·C² + F² values.
//   tiny-llama2-trained (C 256, F 688, 6 layers): 5.4 MB per layer, 32 MB in all.
//   Llama-2-7B  (C 4096, F 11008, 32 layers): (3·4096² + 11008²)·8 B = 1.37 GB per layer, 44 GB in all.
//   Llama-2-70B (C 8192, F 28672, 80 layers): (3·8192² + 28672²)·8 B = 8.2 GB per layer, 660 GB in all: too much
//   to cache; at that size only the diagonals (Wanda: (3·C + F)·8 B per layer, 0.4 MB) or one layer at a time
//   (sequential mode) are practical. Keeping only the local block row of o/down's Gram would divide F² by tp.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/llama.hpp"
#include "model/tokenizer.hpp"
#include "model/weights.hpp"

namespace divprune {

struct CalibrationSpec {
  std::filesystem::path text;  // calibration text file (keep it apart from the evaluation text)
  int64_t sequences = 128;
  int64_t length = 2048;  // tokens per sequence
  uint64_t seed = 0;
};

// Gram matrix of one projection input over the calibration tokens.
struct InputStats {
  int64_t dim = 0;             // full input width
  int64_t tokens = 0;          // rows accumulated
  std::vector<double> gram;    // (dim, dim) row-major, symmetric: Σ_t x_t x_tᵀ
  double sumsq(int64_t j) const { return gram[static_cast<size_t>(j * dim + j)]; }  // Σ‖X_j‖²
};

struct CalibrationStats {
  std::vector<std::array<InputStats, kNumLinearInputs>> layers;  // (L, 4)
  // The input statistics a component's weight multiplies.
  const InputStats& for_component(int64_t layer, Component c) const;
};

LinearInput linear_input_of(Component c);

// The calibration windows of `spec` (token ids). Throws InputError naming the file when it holds fewer tokens
// than one window, or when sequences / length are not positive.
std::vector<std::vector<int32_t>> calibration_sequences(const Tokenizer& tokenizer, const CalibrationSpec& spec);

// Runs `model` (which must hold the base weights, in cached mode) over `sequences` and returns the statistics
// (with `only_layer` >= 0 those of that layer alone, the others left empty: sequential mode, compress/apply.hpp).
// Collective over the model's tensor-parallel group (every rank passes the same sequences).
CalibrationStats collect_calibration(LlamaModel& model, const std::vector<std::vector<int32_t>>& sequences,
                                     int64_t only_layer = -1);

}  // namespace divprune

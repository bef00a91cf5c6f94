#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace divprune {

// Per-row result of launch_vocab_partials, one struct per row so that a single copy brings all of them back
// to the host (where they are unpacked into VocabPartials).
struct VocabRowStats {
  float max;           // max logit of the slice
  float sum_exp;       // sum exp(logit - max) over the slice
  float target_logit;  // logit of the row's target if it lies in the slice, else 0
  int32_t argmax;      // global id of the max; ties -> lowest id
  int32_t has_target;  // 1 if the row's target lies in the slice
};

// Statistics of logits (rows, cols) whose column j is token vocab_begin + j. `targets` is a device array of
// `rows` global token ids, or nullptr when there are none. `out` is a device array of `rows` structs.
// T: float (the lm_head writes fp32 logits) or __nv_bfloat16.
template <typename T>
void launch_vocab_partials(const T* logits, int64_t rows, int64_t cols, const int32_t* targets, int64_t vocab_begin,
                           VocabRowStats* out, cudaStream_t stream);

}  // namespace divprune

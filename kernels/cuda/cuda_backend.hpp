#pragma once
// The CUDA backend: bf16 weights and activations, fp32 accumulation, fp32 logits and vocab statistics.
// GEMMs go through cuBLAS; every other operation is one kernel of this directory. All work of a backend runs
// in order on its own CUDA stream (cuBLAS is bound to it); synchronize() waits for it, download() and
// vocab_partials() return host results and so wait implicitly.
//
// Plain C++ header (no CUDA headers): kernels/backend.cpp and host code include it.
#include <memory>

#include "kernels/backend.hpp"

namespace divprune {

// Number of visible CUDA devices; 0 (never an exception) when there is no driver or no GPU.
int cuda_device_count();

// A backend on GPU `device_index` (0 <= device_index < cuda_device_count(); InputError otherwise).
std::unique_ptr<Backend> make_cuda_backend(int device_index);

// The cudaStream_t (as void*, to keep CUDA headers out of this file) that a CUDA backend runs its work on.
// Hand it to NcclCommunicator so that all-reduces are ordered between the kernels that produce and consume
// their data without host synchronisation. Throws InternalError if `backend` is not a CUDA backend.
void* cuda_stream_of(Backend& backend);

}  // namespace divprune

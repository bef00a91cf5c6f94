#include "kernels/cuda/nccl_communicator.hpp"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdio>
#include <string>

#include "core/errors.hpp"
#include "kernels/cuda/cuda_check.cuh"

namespace divprune {

NcclCommunicator::NcclCommunicator(MPI_Comm comm, int device_index, void* stream)
    : MpiCommunicator(comm), device_(device_index), stream_(stream) {
  // NCCL binds the communicator to the current device, so the device must be selected before init.
  CHECK_CUDA(cudaSetDevice(device_));
  ncclUniqueId id;
  if (rank() == 0) CHECK_NCCL(ncclGetUniqueId(&id));
  CHECK_MPI(MPI_Bcast(&id, static_cast<int>(sizeof(id)), MPI_BYTE, 0, comm));
  ncclComm_t nccl = nullptr;
  CHECK_NCCL(ncclCommInitRank(&nccl, size(), id, rank()));
  nccl_ = nccl;
}

NcclCommunicator::~NcclCommunicator() {
  if (nccl_ == nullptr) return;
  // Destructors must not throw: report and go on.
  WARN_CUDA(cudaSetDevice(device_));
  if (ncclResult_t rc = ncclCommDestroy(nccl_); rc != ncclSuccess)
    std::fprintf(stderr, "ncclCommDestroy failed: %s\n", cuda_detail::nccl_error_text(rc).c_str());
}

void NcclCommunicator::allreduce_sum(Tensor& tensor) {
  EXPECTS(tensor.device() == Device::Cuda && (tensor.dtype() == DType::BF16 || tensor.dtype() == DType::F32),
          "NCCL communicator reduces bfloat16 or float32 CUDA tensors, got " +
              std::string(dtype_name(tensor.dtype())) + (tensor.device() == Device::Cuda ? " on cuda" : " on cpu"));
  if (size() == 1 || tensor.numel() == 0) return;
  CHECK_CUDA(cudaSetDevice(device_));
  const ncclDataType_t type = tensor.dtype() == DType::BF16 ? ncclBfloat16 : ncclFloat32;
  const cudaStream_t stream = stream_ != nullptr ? static_cast<cudaStream_t>(stream_) : cudaStreamLegacy;
  CHECK_NCCL(ncclAllReduce(tensor.data(), tensor.data(), static_cast<size_t>(tensor.numel()), type, ncclSum, nccl_,
                           stream));
}

}  // namespace divprune

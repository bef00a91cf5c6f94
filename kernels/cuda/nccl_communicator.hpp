#pragma once
// Tensor-parallel collectives for GPU ranks: NCCL all-reduces of device tensors (the row-parallel o/down
// projections and the vocab-parallel embedding), MPI for the small host arrays that combine per-row vocab
// statistics. One rank per GPU; the NCCL communicator spans the same ranks as the MPI one it is built from.
//
// It is an MpiCommunicator (core/mpi_communicator.hpp) whose device-tensor all-reduce goes through NCCL: the
// host collectives, rank and size are inherited, so they exist once.
//
// Plain C++ header (no CUDA or NCCL headers). Only built with CUDA: guard includes with DIVPRUNE_HAVE_CUDA.
#include <mpi.h>

#include "core/mpi_communicator.hpp"

struct ncclComm;  // nccl.h: typedef struct ncclComm* ncclComm_t

namespace divprune {

class NcclCommunicator final : public MpiCommunicator {
 public:
  // Collective over `comm` (every rank of it must construct one at the same time): rank 0 creates the NCCL
  // id and broadcasts it over MPI. `device_index` is this rank's GPU, the one its backend uses.
  // `stream` is the cudaStream_t (as void*) that device all-reduces are enqueued on; pass the backend's
  // (cuda_stream_of(backend)) so that each all-reduce runs after the GEMM that produced its input and before
  // the kernel that reads its result, with no host synchronisation. nullptr uses the legacy default stream,
  // which is ordered with every blocking stream of the device (the CUDA backend's stream is one), at the
  // cost of serialising against unrelated streams too.
  NcclCommunicator(MPI_Comm comm, int device_index, void* stream = nullptr);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  // In place, on bfloat16 or float32 CUDA tensors; asynchronous on the stream (see the constructor).
  void allreduce_sum(Tensor& tensor) override;
  // The host-array overloads of allreduce_sum stay MpiCommunicator's (not hidden by the override above).
  using MpiCommunicator::allreduce_sum;

 private:
  int device_ = 0;
  void* stream_ = nullptr;  // cudaStream_t
  ncclComm* nccl_ = nullptr;
};

}  // namespace divprune

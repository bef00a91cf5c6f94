#pragma once
// Tensor-parallel collectives over an MPI communicator, for CPU ranks (tensors in host memory). The host-array
// collectives here are the only implementation of them: NcclCommunicator (kernels/cuda) derives from this class
// and replaces only the device-tensor all-reduce.
#include <mpi.h>

#include "core/communicator.hpp"

namespace divprune {

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(Tensor& tensor) override;
  void allreduce_sum(std::span<float> values) override;
  void allreduce_sum(std::span<double> values) override;
  void allreduce_max(std::span<float> values) override;
  void allgather(std::span<const float> send, std::span<float> recv) override;
  void allgather(std::span<const int32_t> send, std::span<int32_t> recv) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace divprune

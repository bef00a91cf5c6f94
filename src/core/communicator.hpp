#pragma once
// Collective operations inside one tensor-parallel group. The forward pass calls exactly these:
// an all-reduce (sum) of backend tensors after the row-parallel o/down projections and the vocab-parallel
// embedding, and small host all-reduces/all-gathers that combine per-row vocab statistics.
// Implementations: SoloCommunicator (tp = 1, no-ops), MpiCommunicator (CPU ranks; core/mpi_communicator.hpp),
// NcclCommunicator (GPUs; kernels/cuda/nccl_communicator.hpp, an MpiCommunicator whose device-tensor all-reduce
// is NCCL's). The interface lives in core, the lowest layer, because both the model (which calls it) and the
// CUDA kernels target (which implements it) must see it.
#include <cstdint>
#include <memory>
#include <span>

#include "core/tensor.hpp"

namespace divprune {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In-place sum across the group of a tensor living on the group's backend.
  virtual void allreduce_sum(Tensor& tensor) = 0;
  // Host-side collectives on small arrays.
  virtual void allreduce_sum(std::span<float> values) = 0;
  // Doubles hold exact integer counts up to 2^53 (histograms of global magnitude thresholds).
  virtual void allreduce_sum(std::span<double> values) = 0;
  virtual void allreduce_max(std::span<float> values) = 0;
  // recv holds size() blocks of send.size() values, block r from rank r.
  virtual void allgather(std::span<const float> send, std::span<float> recv) = 0;
  virtual void allgather(std::span<const int32_t> send, std::span<int32_t> recv) = 0;
};

// The communicator of a group of one: every collective is the identity.
class SoloCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(Tensor&) override {}
  void allreduce_sum(std::span<float>) override {}
  void allreduce_sum(std::span<double>) override {}
  void allreduce_max(std::span<float>) override {}
  void allgather(std::span<const float> send, std::span<float> recv) override;
  void allgather(std::span<const int32_t> send, std::span<int32_t> recv) override;
};

}  // namespace divprune

#include "core/mpi_communicator.hpp"

#include "core/errors.hpp"

namespace divprune {

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  CHECK_MPI(MPI_Comm_size(comm_, &size_));
}

void MpiCommunicator::allreduce_sum(Tensor& tensor) {
  EXPECTS(tensor.device() == Device::Cpu && tensor.dtype() == DType::F32,
          "MPI communicator reduces host float32 tensors (use NCCL for GPU tensors)");
  if (size_ == 1) return;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, tensor.data(), static_cast<int>(tensor.numel()), MPI_FLOAT, MPI_SUM, comm_));
}

void MpiCommunicator::allreduce_sum(std::span<float> values) {
  if (size_ == 1) return;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_FLOAT, MPI_SUM, comm_));
}

void MpiCommunicator::allreduce_sum(std::span<double> values) {
  if (size_ == 1) return;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm_));
}

void MpiCommunicator::allreduce_max(std::span<float> values) {
  if (size_ == 1) return;
  CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_FLOAT, MPI_MAX, comm_));
}

void MpiCommunicator::allgather(std::span<const float> send, std::span<float> recv) {
  EXPECTS(recv.size() == send.size() * static_cast<size_t>(size_), "allgather sizes");
  CHECK_MPI(MPI_Allgather(send.data(), static_cast<int>(send.size()), MPI_FLOAT, recv.data(),
                          static_cast<int>(send.size()), MPI_FLOAT, comm_));
}

void MpiCommunicator::allgather(std::span<const int32_t> send, std::span<int32_t> recv) {
  EXPECTS(recv.size() == send.size() * static_cast<size_t>(size_), "allgather sizes");
  CHECK_MPI(MPI_Allgather(send.data(), static_cast<int>(send.size()), MPI_INT32_T, recv.data(),
                          static_cast<int>(send.size()), MPI_INT32_T, comm_));
}

}  // namespace divprune

#include "core/communicator.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace divprune {

void SoloCommunicator::allgather(std::span<const float> send, std::span<float> recv) {
  EXPECTS(recv.size() == send.size(), "allgather sizes");
  std::copy(send.begin(), send.end(), recv.begin());
}

void SoloCommunicator::allgather(std::span<const int32_t> send, std::span<int32_t> recv) {
  EXPECTS(recv.size() == send.size(), "allgather sizes");
  std::copy(send.begin(), send.end(), recv.begin());
}

}  // namespace divprune

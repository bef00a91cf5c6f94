#include "parallel/broadcast.hpp"

#include <mpi.h>

#include <algorithm>

#include "core/errors.hpp"

namespace divprune {

void broadcast_raw(void* data, size_t size) {
  // MPI counts are ints: send large buffers (full-vocabulary log-probs of a chunk) in 1 GiB pieces.
  constexpr size_t piece = size_t{1} << 30;
  char* bytes = static_cast<char*>(data);
  for (size_t at = 0; at < size; at += piece) {
    const int count = static_cast<int>(std::min(piece, size - at));
    CHECK_MPI(MPI_Bcast(bytes + at, count, MPI_BYTE, 0, MPI_COMM_WORLD));
  }
}

void broadcast_string(std::string& text) {
  int64_t length = static_cast<int64_t>(text.size());
  broadcast_value(length);
  text.resize(static_cast<size_t>(length));
  broadcast_raw(text.data(), text.size());
}

}  // namespace divprune

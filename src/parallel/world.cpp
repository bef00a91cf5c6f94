#include "parallel/world.hpp"

#include <mpi.h>

#include <algorithm>

#include "core/errors.hpp"

namespace divprune {

constexpr size_t kBroadcastPiece = size_t{1} << 30;

void broadcast_raw(void* data, size_t size) {
  // MPI counts are ints: send large buffers (full-vocabulary log-probs of a chunk) in 1 GiB pieces.
  constexpr size_t piece = kBroadcastPiece;
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

void gather_raw(const void* data, size_t size, void* out) {
  EXPECTS(size < (size_t{1} << 30), "gather_raw: more than 1 GiB per rank");
  const int count = static_cast<int>(size);
  CHECK_MPI(MPI_Gather(data, count, MPI_BYTE, out, count, MPI_BYTE, 0, MPI_COMM_WORLD));
}

namespace {
constexpr int kTagHead = 7101;   // sender -> coordinator: int64 byte count
constexpr int kTagBody = 7102;   // then the bytes, in 1 GiB pieces
constexpr size_t kPiece = size_t{1} << 30;
}  // namespace

void send_raw_to_coordinator(const void* data, size_t size) {
  int64_t count = static_cast<int64_t>(size);
  CHECK_MPI(MPI_Send(&count, 1, MPI_INT64_T, 0, kTagHead, MPI_COMM_WORLD));
  const char* bytes = static_cast<const char*>(data);
  for (size_t at = 0; at < size; at += kPiece)
    CHECK_MPI(MPI_Send(bytes + at, static_cast<int>(std::min(kPiece, size - at)), MPI_BYTE, 0, kTagBody, MPI_COMM_WORLD));
}

std::vector<char> receive_raw_from(int from) {
  int64_t count = 0;
  CHECK_MPI(MPI_Recv(&count, 1, MPI_INT64_T, from, kTagHead, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  std::vector<char> bytes(static_cast<size_t>(count));
  for (size_t at = 0; at < bytes.size(); at += kPiece)
    CHECK_MPI(MPI_Recv(bytes.data() + at, static_cast<int>(std::min(kPiece, bytes.size() - at)), MPI_BYTE, from,
                       kTagBody, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
  return bytes;
}

int world_rank() {
  int rank = 0;
  CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  return rank;
}

int world_size() {
  int size = 1;
  CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &size));
  return size;
}

}  // namespace divprune

#pragma once
// Broadcasts from the coordinator (world rank 0) to every rank of MPI_COMM_WORLD: how a stage hands what the
// coordinator read from the archive or decided (a flag, a run index, the evaluation set, base log-probs) to
// the other ranks. Each call is collective over the world; the values of other ranks are overwritten
// (vectors are resized to the coordinator's length, so they need not be sized beforehand). Values travel as
// raw bytes: a double or float arrives bit-identical.
//
//   int32_t done = coordinator_decides();
//   broadcast_value(done);
//   broadcast_vector(pending);   // std::vector<int64_t>
//
// Stages use these (and collective_step, parallel/topology.hpp) instead of MPI calls of their own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "parallel/bytes.hpp"

namespace divprune {

// `size` bytes at `data` from world rank 0 to every rank (in pieces below INT_MAX bytes).
void broadcast_raw(void* data, size_t size);

template <typename T>
void broadcast_value(T& value) {
  static_assert(std::is_trivially_copyable_v<T>, "broadcast_value: T must be trivially copyable");
  broadcast_raw(&value, sizeof(T));
}

template <typename T>
void broadcast_vector(std::vector<T>& values) {
  static_assert(std::is_trivially_copyable_v<T>, "broadcast_vector: T must be trivially copyable");
  int64_t count = static_cast<int64_t>(values.size());
  broadcast_value(count);
  values.resize(static_cast<size_t>(count));
  broadcast_raw(values.data(), values.size() * sizeof(T));
}

inline void broadcast_bytes(Bytes& bytes) { broadcast_vector(bytes); }

void broadcast_string(std::string& text);

}  // namespace divprune

#pragma once
// Data movement between the coordinator (world rank 0) and the other ranks of MPI_COMM_WORLD: how a stage or
// command hands what the coordinator read from the archive or decided (a flag, a run index, the evaluation
// set, base log-probs) to every rank, and brings per-rank results back. Broadcasts are collective over the
// world; the values of other ranks are overwritten (vectors are resized to the coordinator's length, so they
// need not be sized beforehand). Values travel as raw bytes: a double or float arrives bit-identical.
//
//   int32_t done = coordinator_decides();
//   broadcast_value(done);
//   broadcast_vector(pending);   // std::vector<int64_t>
//
// Stages and commands use these (and collective_step, parallel/topology.hpp) instead of MPI calls of their own.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "parallel/bytes.hpp"

namespace divprune {

// This process's rank in MPI_COMM_WORLD and the world's size.
int world_rank();
int world_size();

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

// `size` bytes of every rank, concatenated in world-rank order into `out` on the coordinator (`out` is not
// touched elsewhere; it must hold world_size * size bytes there). Collective over the world.
void gather_raw(const void* data, size_t size, void* out);

// Every rank's `value` on the coordinator, at index world rank; an empty vector on other ranks.
template <typename T>
std::vector<T> gather_on_coordinator(const T& value) {
  static_assert(std::is_trivially_copyable_v<T>, "gather_on_coordinator: T must be trivially copyable");
  std::vector<T> all(world_rank() == 0 ? static_cast<size_t>(world_size()) : 0);
  gather_raw(&value, sizeof(T), all.data());
  return all;
}

// Point to point, between one rank and the coordinator only (move_to_coordinator's halves): the sender sends
// `size` bytes, preceded by their count; the coordinator receives them from world rank `from` (not 0).
void send_raw_to_coordinator(const void* data, size_t size);
std::vector<char> receive_raw_from(int from);

// `values` of world rank `from`, returned on the coordinator; other ranks get an empty vector. Only `from`
// and the coordinator take part; from == 0 returns a copy. Calls for several `from` ranks must come in the
// same order on the coordinator and the senders.
template <typename T>
std::vector<T> move_to_coordinator(const std::vector<T>& values, int from) {
  static_assert(std::is_trivially_copyable_v<T>, "move_to_coordinator: T must be trivially copyable");
  const int rank = world_rank();
  if (from == 0) return rank == 0 ? values : std::vector<T>{};
  if (rank == from) send_raw_to_coordinator(values.data(), values.size() * sizeof(T));
  if (rank != 0) return {};
  const std::vector<char> bytes = receive_raw_from(from);
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

}  // namespace divprune

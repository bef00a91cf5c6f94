#include "parallel/topology.hpp"

#include <fmt/format.h>

#include <exception>
#include <vector>

#include "core/errors.hpp"

namespace divprune {

Topology make_topology(int tp) {
  Topology t;
  CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &t.world_rank));
  CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &t.world_size));
  if (tp < 1) throw InputError(fmt::format("--tp must be at least 1, got {}", tp));
  if (t.world_size % tp != 0)
    throw InputError(fmt::format("--tp {} does not divide the world size {} (world = replicas x tp)", tp, t.world_size));
  t.tp = tp;
  t.replicas = t.world_size / tp;
  t.replica = t.world_rank / tp;
  t.tp_rank = t.world_rank % tp;
  CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, t.replica, t.tp_rank, &t.tp_comm));
  MPI_Comm node = MPI_COMM_NULL;
  CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, t.world_rank, MPI_INFO_NULL, &node));
  CHECK_MPI(MPI_Comm_rank(node, &t.local_rank));
  CHECK_MPI(MPI_Comm_size(node, &t.local_size));
  CHECK_MPI(MPI_Comm_free(&node));
  return t;
}

void free_topology(Topology& t) {
  if (t.tp_comm != MPI_COMM_NULL) MPI_Comm_free(&t.tp_comm);
  t.tp_comm = MPI_COMM_NULL;
}

void collective_step(MPI_Comm comm, const std::function<void()>& step) {
  int rank = 0, size = 1;
  CHECK_MPI(MPI_Comm_rank(comm, &rank));
  CHECK_MPI(MPI_Comm_size(comm, &size));
  std::string message;
  int kind = 0;  // 0 ok, else the exit code of the error (core/errors.hpp: exit_code_for)
  try {
    step();
  } catch (const std::exception& e) {
    message = e.what();
    kind = exit_code_for(e);
  }
  // The lowest failing rank speaks for all.
  int failing = kind != 0 ? rank : size;
  int first = size;
  CHECK_MPI(MPI_Allreduce(&failing, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == size) return;
  int info[2] = {kind, static_cast<int>(message.size())};
  CHECK_MPI(MPI_Bcast(info, 2, MPI_INT, first, comm));
  std::vector<char> text(static_cast<size_t>(info[1]));
  if (rank == first) text.assign(message.begin(), message.end());
  CHECK_MPI(MPI_Bcast(text.data(), info[1], MPI_CHAR, first, comm));
  std::string shared(text.begin(), text.end());
  throw CollectiveError(shared, info[0]);
}

void world_step(const std::function<void()>& step) { collective_step(MPI_COMM_WORLD, step); }

}  // namespace divprune

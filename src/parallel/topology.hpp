#pragma once
// How MPI_COMM_WORLD is cut: world = replicas × tp. Ranks r with the same r / tp form one tensor-parallel
// replica (tp_rank = r % tp). World rank 0 is the coordinator (it is also tp rank 0 of replica 0): it owns
// the archive and the work queue. Replicas work on different data.
#include <mpi.h>

#include <functional>
#include <string>

namespace divprune {

struct Topology {
  int world_rank = 0;
  int world_size = 1;
  int tp = 1;
  int replicas = 1;
  int replica = 0;
  int tp_rank = 0;
  int local_rank = 0;   // rank among the processes of this node
  int local_size = 1;
  MPI_Comm tp_comm = MPI_COMM_NULL;  // this replica's tensor-parallel group
  bool is_coordinator() const { return world_rank == 0; }
  bool is_replica_leader() const { return tp_rank == 0; }
};

// Requires MPI to be initialised. Throws InputError when tp < 1 or does not divide the world size.
Topology make_topology(int tp);
void free_topology(Topology& topology);

// Runs `step` on every rank; if it throws on any rank, every rank throws the same CollectiveError (the
// message of the lowest failing rank; its exit code: core/errors.hpp exit_code_for). Use around steps that can fail on a subset
// of ranks (opening files, loading a shard) so that no rank is left waiting in a later collective.
void collective_step(MPI_Comm comm, const std::function<void()>& step);
// collective_step over every rank of the run (MPI_COMM_WORLD): what the stages and commands use, so that they
// name no MPI communicator themselves.
void world_step(const std::function<void()>& step);

}  // namespace divprune

#pragma once
// Builds a tensor-parallel replica of a checkpoint inside MPI_COMM_WORLD for tests: ranks are cut into groups of
// `tp` consecutive ranks, as divprune's own topology does.
#include <mpi.h>

#include <memory>
#include <string>

#include "core/mpi_communicator.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/weights.hpp"
#include "parallel/topology.hpp"

namespace divprune::test {

struct TpReplica {
  Topology topology;
  std::unique_ptr<Checkpoint> checkpoint;
  CpuBackend backend;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<LlamaModel> model;

  TpReplica(const std::string& path, int tp) {
    topology = make_topology(tp);
    checkpoint = open_checkpoint(path);
    const ShardLayout layout = make_shard_layout(checkpoint->config(), TpShard{topology.tp_rank, tp});
    HostWeights host = load_host_weights(*checkpoint, layout);
    if (tp == 1) {
      comm = std::make_unique<SoloCommunicator>();
    } else {
      comm = std::make_unique<MpiCommunicator>(topology.tp_comm);
    }
    model = std::make_unique<LlamaModel>(checkpoint->config(), layout, backend, *comm, upload_weights(backend, host));
  }
  ~TpReplica() { free_topology(topology); }
};

}  // namespace divprune::test

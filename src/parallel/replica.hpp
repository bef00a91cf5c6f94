#pragma once
// This rank's part of one model replica: the checkpoint, the pristine weights of its shard, the backend, the
// tensor-parallel communicator and the forward. Constructing it is collective over MPI_COMM_WORLD, so a rank
// that cannot open a file makes every rank fail with the same message instead of hanging.
#include <filesystem>
#include <memory>

#include "kernels/backend.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/weights.hpp"
#include "parallel/topology.hpp"

namespace divprune {

struct ReplicaOptions {
  std::filesystem::path model;       // HF directory or llama2.c .bin
  BackendKind backend = BackendKind::Cpu;
  int threads = 0;                   // BLAS threads per rank; 0 = cores of the node / ranks on the node
};

class ModelReplica {
 public:
  ModelReplica(const Topology& topology, const ReplicaOptions& options);
  ~ModelReplica();

  const Checkpoint& checkpoint() const { return *checkpoint_; }
  const ModelConfig& config() const { return checkpoint_->config(); }
  const HostWeights& pristine() const { return pristine_; }
  LlamaModel& model() { return *model_; }
  // Models that may run concurrently on this rank, model() first. On the CPU backend at tp = 1 a rank runs one
  // worker thread per core, each with its own model over the shared weights and single-threaded BLAS: that
  // keeps both the GEMMs and the per-token vocab work parallel, which threaded BLAS alone does not.
  std::vector<LlamaModel*> workers();
  Backend& backend() { return *backend_; }
  const Topology& topology() const { return topology_; }

 private:
  Topology topology_;
  std::unique_ptr<Checkpoint> checkpoint_;
  HostWeights pristine_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<LlamaModel> model_;
  std::vector<std::unique_ptr<Backend>> worker_backends_;
  std::vector<std::unique_ptr<LlamaModel>> worker_models_;
};

// Threads this rank may use: `threads` if positive, else the node's cores shared among its ranks.
int rank_threads(const Topology& topology, int threads);

}  // namespace divprune

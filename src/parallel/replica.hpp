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
  Backend& backend() { return *backend_; }
  const Topology& topology() const { return topology_; }

 private:
  Topology topology_;
  std::unique_ptr<Checkpoint> checkpoint_;
  HostWeights pristine_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<LlamaModel> model_;
};

// Sets the BLAS thread count: `threads` if positive, else the node's cores shared among its ranks.
void configure_cpu_threads(const Topology& topology, int threads);

}  // namespace divprune

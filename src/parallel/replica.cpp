#include "parallel/replica.hpp"

#include <cblas.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "core/mpi_communicator.hpp"
#ifdef DIVPRUNE_HAVE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/nccl_communicator.hpp"
#endif

namespace divprune {

int rank_threads(const Topology& topology, int threads) {
  if (threads > 0) return threads;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, topology.local_size));
}

namespace {
// Ranks of a node take its GPUs in turn; with more ranks than GPUs, several replicas share one (useful for
// tests on a single GPU; a tensor-parallel group must still span distinct GPUs for NCCL).
int gpu_index(const Topology& topology, BackendKind backend) {
#ifdef DIVPRUNE_HAVE_CUDA
  if (backend == BackendKind::Cuda && cuda_device_count() > 0) return topology.local_rank % cuda_device_count();
#endif
  (void)backend;
  return topology.local_rank;
}
}  // namespace

ModelReplica::ModelReplica(const Topology& topology, const ReplicaOptions& options) : topology_(topology) {
  const int threads = rank_threads(topology, options.threads);
  const bool thread_workers = options.backend == BackendKind::Cpu && topology.tp == 1 && threads > 1;
  openblas_set_num_threads(thread_workers ? 1 : threads);
  collective_step(MPI_COMM_WORLD, [&] {
    checkpoint_ = open_checkpoint(options.model);
    const ShardLayout layout = make_shard_layout(checkpoint_->config(), TpShard{topology.tp_rank, topology.tp});
    pristine_ = load_host_weights(*checkpoint_, layout);
    backend_ = make_backend(options.backend, gpu_index(topology, options.backend));
  });
  if (topology.tp == 1) {
    comm_ = std::make_unique<SoloCommunicator>();
  } else if (options.backend == BackendKind::Cpu) {
    comm_ = std::make_unique<MpiCommunicator>(topology.tp_comm);
  } else {
#ifdef DIVPRUNE_HAVE_CUDA
    comm_ = std::make_unique<NcclCommunicator>(topology.tp_comm, gpu_index(topology, options.backend),
                                               cuda_stream_of(*backend_));
#endif
  }
  model_ = std::make_unique<LlamaModel>(checkpoint_->config(), pristine_.layout, *backend_, *comm_,
                                        upload_weights(*backend_, pristine_));
  if (thread_workers) {
    for (int w = 1; w < threads; ++w) {
      worker_backends_.push_back(make_backend(BackendKind::Cpu));
      worker_models_.push_back(std::make_unique<LlamaModel>(checkpoint_->config(), pristine_.layout,
                                                            *worker_backends_.back(), *comm_, model_->shared_weights()));
    }
  }
  spdlog::info("loaded {} ({}, {} layers, hidden {}, {} heads / {} kv) as {} replica(s) x tp {}",
               options.model.string(), checkpoint_->format(), config().num_layers, config().hidden_size,
               config().num_heads, config().num_kv_heads, topology.replicas, topology.tp);
}

ModelReplica::~ModelReplica() = default;

std::vector<LlamaModel*> ModelReplica::workers() {
  std::vector<LlamaModel*> out{model_.get()};
  for (auto& m : worker_models_) out.push_back(m.get());
  return out;
}

}  // namespace divprune

#include "parallel/gather_logits.hpp"

#include "core/errors.hpp"

namespace divprune {

std::vector<float> gather_vocab_slices(LlamaModel& model, const Tensor& logits_local, const Topology& topology) {
  const int64_t n = logits_local.dim(0), local_v = logits_local.dim(1), vocab = model.config().vocab_size;
  std::vector<float> local(static_cast<size_t>(n * local_v));
  model.backend().download(logits_local, local);
  if (topology.tp == 1) return local;
  // Slices differ in width by at most one column: gather counts first, then the slices.
  int count = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<size_t>(topology.tp)), displs(static_cast<size_t>(topology.tp));
  CHECK_MPI(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, topology.tp_comm));
  std::vector<float> slices;
  if (topology.tp_rank == 0) {
    int offset = 0;
    for (int r = 0; r < topology.tp; ++r) {
      displs[r] = offset;
      offset += counts[r];
    }
    slices.resize(static_cast<size_t>(offset));
  }
  CHECK_MPI(MPI_Gatherv(local.data(), count, MPI_FLOAT, slices.data(), counts.data(), displs.data(), MPI_FLOAT, 0,
                        topology.tp_comm));
  if (topology.tp_rank != 0) return {};
  std::vector<float> full(static_cast<size_t>(n * vocab));
  int64_t column = 0;
  for (int r = 0; r < topology.tp; ++r) {
    const int64_t width = counts[r] / n;
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(slices.data() + displs[r] + i * width, width, full.data() + i * vocab + column);
    column += width;
  }
  EXPECTS(column == vocab, "gathered vocab slices do not cover the vocabulary");
  return full;
}

}  // namespace divprune

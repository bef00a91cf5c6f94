#include "kernels/backend.hpp"

#include "core/errors.hpp"
#include "kernels/cpu/cpu_backend.hpp"

#ifdef DIVPRUNE_HAVE_CUDA
#include "kernels/cuda/cuda_backend.hpp"
#endif

namespace divprune {

bool cuda_backend_available() {
#ifdef DIVPRUNE_HAVE_CUDA
  return cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(BackendKind kind, int device_index) {
  if (kind == BackendKind::Cpu) return std::make_unique<CpuBackend>();
#ifdef DIVPRUNE_HAVE_CUDA
  if (cuda_device_count() == 0) throw InputError("--backend cuda: no CUDA device is visible on this node");
  return make_cuda_backend(device_index);
#else
  (void)device_index;
  throw InputError("--backend cuda: this divprune was built without CUDA (configure with -DDIVPRUNE_CUDA=ON)");
#endif
}

}  // namespace divprune

#include "kernels/cuda/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "kernels/cuda/add.cuh"
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/convert.cuh"
#include "kernels/cuda/cuda_check.cuh"
#include "kernels/cuda/embedding.cuh"
#include "kernels/cuda/gemm.cuh"
#include "kernels/cuda/rmsnorm.cuh"
#include "kernels/cuda/rope.cuh"
#include "kernels/cuda/swiglu.cuh"
#include "kernels/cuda/vocab_partials.cuh"

namespace divprune {

namespace {

using bf16 = __nv_bfloat16;

// Host <-> device conversions go through a device fp32 staging buffer of at most this many values (16 MiB),
// so uploading a 500 MB embedding table needs no second full-size copy on either side.
constexpr size_t kStagingFloats = size_t{1} << 22;

// cudaMalloc(0) returns no pointer; a Tensor with a null pointer reads as undefined, so empty tensors get a
// token allocation (the CPU backend does the same).
constexpr size_t kMinAllocation = 256;

std::shared_ptr<void> device_alloc(size_t bytes) {
  void* ptr = nullptr;
  CHECK_CUDA(cudaMalloc(&ptr, std::max(bytes, kMinAllocation)));
  // The deleter must not throw (it runs in destructors). cudaFree waits for the device to finish with the
  // memory, so freeing a tensor that queued kernels still read is safe.
  return std::shared_ptr<void>(ptr, [](void* p) { WARN_CUDA(cudaFree(p)); });
}

// Device scratch that grows to the largest request and is then reused (token ids, targets, vocab statistics,
// conversion staging). Growing synchronises the stream first: queued work may still read the old buffer.
class DeviceScratch {
 public:
  void* get(size_t bytes, cudaStream_t stream) {
    if (bytes > capacity_) {
      CHECK_CUDA(cudaStreamSynchronize(stream));
      memory_ = device_alloc(bytes);
      capacity_ = bytes;
    }
    return memory_.get();
  }

 private:
  std::shared_ptr<void> memory_;
  size_t capacity_ = 0;
};

std::string describe(const Tensor& t) {
  return std::string(dtype_name(t.dtype())) + " " + shape_string(t.shape()) +
         (t.device() == Device::Cuda ? " on cuda" : " on cpu");
}

void expect_device_tensor(const Tensor& t, const char* what) {
  EXPECTS(t.defined() && t.device() == Device::Cuda && (t.dtype() == DType::BF16 || t.dtype() == DType::F32),
          std::string("CUDA backend: ") + what + " must be a bfloat16 or float32 CUDA tensor, got " + describe(t));
}

void expect_same_dtype(const Tensor& a, const Tensor& b, const char* what) {
  EXPECTS(a.dtype() == b.dtype(),
          std::string("CUDA backend: ") + what + " dtypes differ: " + describe(a) + " vs " + describe(b));
}

// Calls body(T{}) with T the element type of `dtype` (float or bf16): one instantiation per dtype, chosen at
// run time from the tensor.
template <typename Body>
void dispatch_float_type(DType dtype, Body&& body) {
  switch (dtype) {
    case DType::F32: body(float{}); return;
    case DType::BF16: body(bf16{}); return;
    case DType::F16: break;
  }
  throw_internal("dispatch_float_type", std::string("CUDA backend has no kernels for ") +
                                            std::string(dtype_name(dtype)), __FILE__, __LINE__);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index) : device_(device_index) {
    CHECK_CUDA(cudaSetDevice(device_));
    // A blocking stream (not cudaStreamNonBlocking): work on the legacy default stream, e.g. an NCCL
    // communicator constructed without a stream, stays ordered with it.
    CHECK_CUDA(cudaStreamCreate(&stream_));
    try {
      CHECK_CUBLAS(cublasCreate(&cublas_));
      CHECK_CUBLAS(cublasSetStream(cublas_, stream_));
      // Strict fp32 for fp32 GEMMs (no TF32); bf16 GEMMs use tensor cores with fp32 accumulation anyway.
      CHECK_CUBLAS(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    } catch (...) {
      if (cublas_ != nullptr) cublasDestroy(cublas_);
      WARN_CUDA(cudaStreamDestroy(stream_));
      throw;
    }
  }

  ~CudaBackend() override {
    // Scratch buffers and tensors free themselves (cudaFree waits for pending work); the handle and the
    // stream go last, without throwing.
    WARN_CUDA(cudaSetDevice(device_));
    WARN_CUDA(cudaStreamSynchronize(stream_));
    if (cublasStatus_t rc = cublasDestroy(cublas_); rc != CUBLAS_STATUS_SUCCESS)
      std::fprintf(stderr, "cublasDestroy failed: %s\n", cuda_detail::cublas_error_text(rc).c_str());
    WARN_CUDA(cudaStreamDestroy(stream_));
  }

  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  cudaStream_t stream() const { return stream_; }

  Device device() const override { return Device::Cuda; }
  DType compute_dtype() const override { return DType::BF16; }

  void synchronize() override {
    activate();
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  Tensor empty(const Shape& shape, DType dtype) override {
    EXPECTS(dtype == DType::BF16 || dtype == DType::F32,
            std::string("CUDA backend stores bfloat16 or float32, not ") + std::string(dtype_name(dtype)));
    const int64_t numel = shape_numel(shape);
    EXPECTS(numel >= 0, "CUDA backend: negative dimension in " + shape_string(shape));
    activate();
    const size_t bytes = static_cast<size_t>(numel) * dtype_size(dtype);
    std::shared_ptr<void> storage = device_alloc(bytes);
    // Zeroed like the CPU backend's tensors, so that never-written rows (a KV cache past the filled length)
    // hold numbers rather than stale bits that could be NaN.
    CHECK_CUDA(cudaMemsetAsync(storage.get(), 0, bytes, stream_));
    void* data = storage.get();
    return Tensor(std::move(storage), data, dtype, Device::Cuda, shape);
  }

  Tensor upload(std::span<const float> host, const Shape& shape, DType dtype) override {
    EXPECTS(static_cast<int64_t>(host.size()) == shape_numel(shape),
            "upload of " + std::to_string(host.size()) + " values into " + shape_string(shape));
    Tensor t = empty(shape, dtype);
    if (host.empty()) return t;
    // cudaMemcpyAsync from pageable memory returns once `host` has been staged, so the caller may free it;
    // the copy stays ordered on the stream (after the memset of empty(), before the conversion).
    if (dtype == DType::F32) {
      CHECK_CUDA(cudaMemcpyAsync(t.data(), host.data(), host.size_bytes(), cudaMemcpyHostToDevice, stream_));
      return t;
    }
    float* staging = static_cast<float*>(staging_.get(sizeof(float) * std::min(host.size(), kStagingFloats), stream_));
    for (size_t done = 0; done < host.size(); done += kStagingFloats) {
      const size_t count = std::min(kStagingFloats, host.size() - done);
      CHECK_CUDA(cudaMemcpyAsync(staging, host.data() + done, sizeof(float) * count, cudaMemcpyHostToDevice, stream_));
      launch_convert(staging, t.data_as<bf16>() + done, static_cast<int64_t>(count), stream_);
    }
    return t;
  }

  void download(const Tensor& tensor, std::span<float> host) override {
    expect_device_tensor(tensor, "download source");
    EXPECTS(static_cast<int64_t>(host.size()) == tensor.numel(),
            "download of " + describe(tensor) + " into " + std::to_string(host.size()) + " values");
    activate();
    if (!host.empty()) {
      if (tensor.dtype() == DType::F32) {
        CHECK_CUDA(cudaMemcpyAsync(host.data(), tensor.data(), host.size_bytes(), cudaMemcpyDeviceToHost, stream_));
      } else {
        float* staging =
            static_cast<float*>(staging_.get(sizeof(float) * std::min(host.size(), kStagingFloats), stream_));
        for (size_t done = 0; done < host.size(); done += kStagingFloats) {
          const size_t count = std::min(kStagingFloats, host.size() - done);
          launch_convert(tensor.data_as<bf16>() + done, staging, static_cast<int64_t>(count), stream_);
          CHECK_CUDA(cudaMemcpyAsync(host.data() + done, staging, sizeof(float) * count, cudaMemcpyDeviceToHost,
                                     stream_));
        }
      }
    }
    CHECK_CUDA(cudaStreamSynchronize(stream_));
  }

  void embedding(const Tensor& table, std::span<const int32_t> ids, int64_t vocab_begin, Tensor& out) override {
    expect_device_tensor(table, "embedding table");
    expect_device_tensor(out, "embedding output");
    expect_same_dtype(table, out, "embedding table/output");
    const int64_t n = static_cast<int64_t>(ids.size()), rows = table.dim(0), hidden = table.dim(1);
    EXPECTS(out.numel() == n * hidden, "embedding output " + describe(out) + " for " + std::to_string(n) +
                                           " ids of width " + std::to_string(hidden));
    if (n == 0) return;
    activate();
    int32_t* device_ids = static_cast<int32_t*>(ids_.get(ids.size_bytes(), stream_));
    CHECK_CUDA(cudaMemcpyAsync(device_ids, ids.data(), ids.size_bytes(), cudaMemcpyHostToDevice, stream_));
    dispatch_float_type(table.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_embedding(table.data_as<const T>(), rows, hidden, device_ids, n, vocab_begin, out.data_as<T>(), stream_);
    });
  }

  void rmsnorm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    expect_device_tensor(x, "rmsnorm input");
    expect_device_tensor(weight, "rmsnorm weight");
    expect_device_tensor(out, "rmsnorm output");
    expect_same_dtype(x, out, "rmsnorm input/output");
    if (x.numel() == 0) return;
    const int64_t rows = x.dim(0), cols = x.numel() / rows;
    EXPECTS(weight.numel() == cols && out.numel() == x.numel(),
            "rmsnorm x " + describe(x) + " weight " + describe(weight) + " out " + describe(out));
    activate();
    dispatch_float_type(x.dtype(), [&](auto x_tag) {
      using T = decltype(x_tag);
      dispatch_float_type(weight.dtype(), [&](auto w_tag) {
        using W = decltype(w_tag);
        launch_rmsnorm(x.data_as<const T>(), weight.data_as<const W>(), out.data_as<T>(), rows, cols, eps, stream_);
      });
    });
  }

  void matmul(const Tensor& x, const Tensor& w, Tensor& y) override {
    expect_device_tensor(x, "matmul input");
    expect_device_tensor(w, "matmul weight");
    expect_device_tensor(y, "matmul output");
    expect_same_dtype(x, w, "matmul input/weight");
    const GemmShape shape{.n = x.dim(0), .in = w.dim(1), .out = w.dim(0)};
    EXPECTS(x.numel() == shape.n * shape.in && y.numel() == shape.n * shape.out,
            "matmul x " + describe(x) + " w " + describe(w) + " y " + describe(y));
    EXPECTS(y.dtype() == x.dtype() || y.dtype() == DType::F32,
            "matmul output must be float32 or the input dtype, got " + describe(y));
    activate();
    auto gemm_type = [](DType d) { return d == DType::BF16 ? GemmType::BF16 : GemmType::F32; };
    launch_gemm(cublas_, x.data(), w.data(), gemm_type(x.dtype()), y.data(), gemm_type(y.dtype()), shape);
  }

  void rope(Tensor& x, int64_t pos0, float theta) override {
    expect_device_tensor(x, "rope input");
    EXPECTS(x.rank() == 3 && x.dim(2) % 2 == 0, "rope input must be (n, heads, even D), got " + describe(x));
    activate();
    dispatch_float_type(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_rope(x.data_as<T>(), x.dim(0), x.dim(1), x.dim(2), pos0, theta, stream_);
    });
  }

  void attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, int64_t pos0, Tensor& out) override {
    expect_device_tensor(q, "attention q");
    expect_device_tensor(k_cache, "attention k cache");
    expect_device_tensor(v_cache, "attention v cache");
    expect_device_tensor(out, "attention output");
    expect_same_dtype(q, k_cache, "attention q/k");
    expect_same_dtype(q, v_cache, "attention q/v");
    expect_same_dtype(q, out, "attention q/out");
    EXPECTS(q.rank() == 3 && k_cache.rank() == 3 && v_cache.shape() == k_cache.shape(),
            "attention q " + describe(q) + " k " + describe(k_cache) + " v " + describe(v_cache));
    const AttentionShape shape{
        .n = q.dim(0), .heads = q.dim(1), .kv_heads = k_cache.dim(1), .head_dim = q.dim(2), .pos0 = pos0};
    EXPECTS(k_cache.dim(2) == shape.head_dim && shape.kv_heads > 0 && shape.heads % shape.kv_heads == 0 &&
                pos0 >= 0 && pos0 + shape.n <= k_cache.dim(0) && out.numel() == q.numel(),
            "attention q " + describe(q) + " cache " + describe(k_cache) + " pos0 " + std::to_string(pos0) +
                " out " + describe(out));
    EXPECTS(shape.head_dim <= kAttentionMaxHeadDim,
            "attention head_dim " + std::to_string(shape.head_dim) + " exceeds the CUDA kernel's maximum " +
                std::to_string(kAttentionMaxHeadDim));
    activate();
    dispatch_float_type(q.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_attention(q.data_as<const T>(), k_cache.data_as<const T>(), v_cache.data_as<const T>(),
                       out.data_as<T>(), shape, stream_);
    });
  }

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override {
    expect_device_tensor(gate, "swiglu gate");
    expect_device_tensor(up, "swiglu up");
    expect_device_tensor(out, "swiglu output");
    expect_same_dtype(gate, up, "swiglu gate/up");
    expect_same_dtype(gate, out, "swiglu gate/out");
    EXPECTS(up.numel() == gate.numel() && out.numel() == gate.numel(),
            "swiglu gate " + describe(gate) + " up " + describe(up) + " out " + describe(out));
    activate();
    dispatch_float_type(gate.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_swiglu(gate.data_as<const T>(), up.data_as<const T>(), out.data_as<T>(), gate.numel(), stream_);
    });
  }

  void add(Tensor& x, const Tensor& y) override {
    expect_device_tensor(x, "add x");
    expect_device_tensor(y, "add y");
    expect_same_dtype(x, y, "add x/y");
    EXPECTS(x.numel() == y.numel(), "add x " + describe(x) + " y " + describe(y));
    activate();
    dispatch_float_type(x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_add(x.data_as<T>(), y.data_as<const T>(), x.numel(), stream_);
    });
  }

  void vocab_partials(const Tensor& logits, std::span<const int32_t> targets, int64_t vocab_begin,
                      VocabPartials& out) override {
    expect_device_tensor(logits, "vocab_partials logits");
    EXPECTS(logits.rank() == 2, "vocab_partials logits must be (n, V), got " + describe(logits));
    const int64_t n = logits.dim(0), v = logits.dim(1);
    EXPECTS(targets.empty() || static_cast<int64_t>(targets.size()) == n,
            "vocab_partials: " + std::to_string(targets.size()) + " targets for " + std::to_string(n) + " rows");
    out.resize(static_cast<size_t>(n));
    if (n == 0) return;
    activate();
    const int32_t* device_targets = nullptr;
    if (!targets.empty()) {
      int32_t* buffer = static_cast<int32_t*>(targets_.get(targets.size_bytes(), stream_));
      CHECK_CUDA(cudaMemcpyAsync(buffer, targets.data(), targets.size_bytes(), cudaMemcpyHostToDevice, stream_));
      device_targets = buffer;
    }
    auto* device_stats = static_cast<VocabRowStats*>(stats_.get(sizeof(VocabRowStats) * n, stream_));
    dispatch_float_type(logits.dtype(), [&](auto tag) {
      using T = decltype(tag);
      launch_vocab_partials(logits.data_as<const T>(), n, v, device_targets, vocab_begin, device_stats, stream_);
    });
    std::vector<VocabRowStats> host(static_cast<size_t>(n));
    CHECK_CUDA(cudaMemcpyAsync(host.data(), device_stats, sizeof(VocabRowStats) * n, cudaMemcpyDeviceToHost, stream_));
    CHECK_CUDA(cudaStreamSynchronize(stream_));
    for (size_t i = 0; i < host.size(); ++i) {
      out.max[i] = host[i].max;
      out.sum_exp[i] = host[i].sum_exp;
      out.argmax[i] = host[i].argmax;
      out.target_logit[i] = host[i].target_logit;
      out.has_target[i] = static_cast<uint8_t>(host[i].has_target);
    }
  }

 private:
  // Several backends (or an NCCL communicator) may share a process and thread; every entry point makes this
  // backend's GPU current first. cudaSetDevice is a cheap no-op when it already is.
  void activate() const { CHECK_CUDA(cudaSetDevice(device_)); }

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceScratch ids_;      // (n) token ids of embedding()
  DeviceScratch targets_;  // (n) targets of vocab_partials()
  DeviceScratch stats_;    // (n) VocabRowStats of vocab_partials()
  DeviceScratch staging_;  // fp32 staging of bf16 upload/download
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    // No driver, driver older than the runtime, or no device: report none. Clear the sticky error so that it
    // does not surface in a later, unrelated check.
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  const int count = cuda_device_count();
  if (device_index < 0 || device_index >= count)
    throw InputError("CUDA device " + std::to_string(device_index) + " requested but " + std::to_string(count) +
                     " device(s) are visible (check CUDA_VISIBLE_DEVICES and the Slurm GPU binding)");
  return std::make_unique<CudaBackend>(device_index);
}

void* cuda_stream_of(Backend& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  EXPECTS(cuda != nullptr, "cuda_stream_of: the backend is not a CUDA backend");
  return static_cast<void*>(cuda->stream());
}

}  // namespace divprune

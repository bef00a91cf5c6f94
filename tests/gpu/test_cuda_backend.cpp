// Every operation of the CUDA backend against the fp32 CPU reference (DESIGN: "a CPU result is the reference
// the CUDA one is tested against"; llama.cpp's test-backend-ops). Inputs are random, rounded to bf16 first so
// that both backends see identical values; what remains is the CUDA backend's bf16 storage of outputs and
// intermediates, bounded by a relative error of 2e-2 (bf16 has 8 significant bits: one rounding is <= 0.4%).
//
// Needs a GPU (ctest label `gpu`). Without one every test FAILS in SetUp: a GPU job that silently found no
// device must not look green.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/errors.hpp"
#include "kernels/backend.hpp"
#include "kernels/cpu/cpu_backend.hpp"
#include "kernels/cuda/cuda_backend.hpp"

namespace divprune {
namespace {

constexpr float kBf16RelativeTolerance = 2e-2f;

// Nearest bf16 value (ties to even), as a float. Inputs of both backends go through it.
float round_to_bf16(float x) {
  uint32_t bits = std::bit_cast<uint32_t>(x);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return std::bit_cast<float>(bits & 0xffff0000u);
}

std::vector<float> random_bf16_values(size_t count, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& v : values) v = round_to_bf16(normal(rng));
  return values;
}

// Per element |got - want| <= tolerance * max(|want|, rms(want)). The rms floor keeps entries that cancel
// to almost zero (a dot product of random vectors) from demanding an impossible relative accuracy.
void expect_close(std::span<const float> got, std::span<const float> want, float tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double sum_sq = 0.0;
  for (float w : want) sum_sq += static_cast<double>(w) * w;
  const float rms = want.empty() ? 0.0f : static_cast<float>(std::sqrt(sum_sq / static_cast<double>(want.size())));
  size_t failures = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float bound = tolerance * std::max(std::fabs(want[i]), rms);
    if (!(std::fabs(got[i] - want[i]) <= bound)) {  // written so that NaN fails
      if (++failures <= 5)
        ADD_FAILURE() << what << ": element " << i << " cuda " << got[i] << " cpu " << want[i] << " (bound " << bound
                      << ")";
    }
  }
  EXPECT_EQ(failures, 0u) << what << ": " << failures << " of " << got.size() << " elements out of tolerance";
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GT(cuda_device_count(), 0) << "no CUDA device is visible: GPU tests (label gpu) must run on a GPU node";
    cuda_ = make_cuda_backend(0);
    ASSERT_EQ(cuda_->device(), Device::Cuda);
    ASSERT_EQ(cuda_->compute_dtype(), DType::BF16);
  }

  // The same host values on both backends: fp32 on the CPU, `dtype` (default: bf16) on the GPU.
  struct Pair {
    Tensor cpu;
    Tensor cuda;
  };
  Pair upload_both(const std::vector<float>& values, const Shape& shape, DType cuda_dtype = DType::BF16) {
    return Pair{cpu_.upload(values, shape, DType::F32), cuda_->upload(values, shape, cuda_dtype)};
  }
  Pair empty_both(const Shape& shape, DType cuda_dtype = DType::BF16) {
    return Pair{cpu_.empty(shape, DType::F32), cuda_->empty(shape, cuda_dtype)};
  }

  std::vector<float> fetch(Backend& backend, const Tensor& t) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend.download(t, host);
    return host;
  }

  void expect_pair_close(const Pair& p, const std::string& what, float tolerance = kBf16RelativeTolerance) {
    expect_close(fetch(*cuda_, p.cuda), fetch(cpu_, p.cpu), tolerance, what);
  }

  CpuBackend cpu_;
  std::unique_ptr<Backend> cuda_;
};

TEST_F(CudaBackendTest, UploadDownloadRoundTripsExactly) {
  // More values than one 4M-float staging chunk, so the chunked bf16 conversion is exercised.
  const std::vector<float> values = random_bf16_values((size_t{1} << 22) + 12345, 1);
  const Shape shape{static_cast<int64_t>(values.size())};
  for (DType dtype : {DType::BF16, DType::F32}) {
    Tensor t = cuda_->upload(values, shape, dtype);
    EXPECT_EQ(t.dtype(), dtype);
    EXPECT_EQ(t.device(), Device::Cuda);
    EXPECT_EQ(fetch(*cuda_, t), values) << "dtype " << dtype_name(dtype);
  }
}

TEST_F(CudaBackendTest, UploadRoundsToNearestBf16) {
  const std::vector<float> values{1.0f + 1.0f / 512.0f, 3.14159265f, -1e-3f, 65504.0f};
  Tensor t = cuda_->upload(values, {4}, DType::BF16);
  const std::vector<float> got = fetch(*cuda_, t);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(got[i], round_to_bf16(values[i])) << "value " << values[i];
}

TEST_F(CudaBackendTest, EmptyTensorsAreZero) {
  Tensor t = cuda_->empty({3, 5}, DType::BF16);
  EXPECT_EQ(fetch(*cuda_, t), std::vector<float>(15, 0.0f));
}

TEST_F(CudaBackendTest, EmbeddingZeroesIdsOutsideTheSlice) {
  const int64_t rows = 50, hidden = 96, vocab_begin = 100;
  Pair table = upload_both(random_bf16_values(rows * hidden, 2), {rows, hidden});
  const std::vector<int32_t> ids{100, 149, 99, 150, 123, 0, 123};  // inside, last, before, after, repeated
  Pair out = empty_both({static_cast<int64_t>(ids.size()), hidden});
  cpu_.embedding(table.cpu, ids, vocab_begin, out.cpu);
  cuda_->embedding(table.cuda, ids, vocab_begin, out.cuda);
  // A row copy: exact.
  EXPECT_EQ(fetch(*cuda_, out.cuda), fetch(cpu_, out.cpu));
}

TEST_F(CudaBackendTest, RmsnormMatchesCpu) {
  const int64_t n = 7, c = 300;
  Pair x = upload_both(random_bf16_values(n * c, 3, 2.0f), {n, c});
  const std::vector<float> w = random_bf16_values(c, 4);
  for (DType weight_dtype : {DType::BF16, DType::F32}) {
    Pair weight = upload_both(w, {c}, weight_dtype);
    Pair out = empty_both({n, c});
    cpu_.rmsnorm(x.cpu, weight.cpu, 1e-5f, out.cpu);
    cuda_->rmsnorm(x.cuda, weight.cuda, 1e-5f, out.cuda);
    expect_pair_close(out, std::string("rmsnorm, weight ") + std::string(dtype_name(weight_dtype)));
  }
}

TEST_F(CudaBackendTest, RmsnormInPlace) {
  const int64_t n = 3, c = 4096;
  Pair x = upload_both(random_bf16_values(n * c, 5), {n, c});
  Pair weight = upload_both(random_bf16_values(c, 6), {c});
  cpu_.rmsnorm(x.cpu, weight.cpu, 1e-6f, x.cpu);
  cuda_->rmsnorm(x.cuda, weight.cuda, 1e-6f, x.cuda);
  expect_pair_close(x, "rmsnorm in place");
}

struct MatmulCase {
  int64_t n, in, out;
  DType output;  // BF16: a projection; F32: the lm_head writing fp32 logits
};

TEST_F(CudaBackendTest, MatmulMatchesCpu) {
  const std::vector<MatmulCase> cases{
      {1, 64, 32, DType::BF16}, {13, 200, 72, DType::BF16}, {64, 512, 256, DType::BF16},
      {5, 96, 1000, DType::F32}, {1, 128, 3, DType::F32},
  };
  uint32_t seed = 10;
  for (const MatmulCase& mc : cases) {
    const std::string what = "matmul n " + std::to_string(mc.n) + " in " + std::to_string(mc.in) + " out " +
                             std::to_string(mc.out) + " -> " + std::string(dtype_name(mc.output));
    Pair x = upload_both(random_bf16_values(mc.n * mc.in, seed++), {mc.n, mc.in});
    Pair w = upload_both(random_bf16_values(mc.out * mc.in, seed++, 0.05f), {mc.out, mc.in});
    Pair y = empty_both({mc.n, mc.out}, mc.output);
    cpu_.matmul(x.cpu, w.cpu, y.cpu);
    cuda_->matmul(x.cuda, w.cuda, y.cuda);
    EXPECT_EQ(y.cuda.dtype(), mc.output);
    expect_pair_close(y, what);
  }
}

TEST_F(CudaBackendTest, MatmulWritesIntoARowsView) {
  // The forward writes k/v projections straight into rows [pos0, pos0 + n) of the KV cache.
  const int64_t capacity = 10, pos0 = 4, n = 3, in = 64, out = 32;
  Pair cache = empty_both({capacity, out});
  Pair x = upload_both(random_bf16_values(n * in, 20), {n, in});
  Pair w = upload_both(random_bf16_values(out * in, 21, 0.1f), {out, in});
  Tensor cpu_rows = cache.cpu.rows(pos0, n);
  Tensor cuda_rows = cache.cuda.rows(pos0, n);
  cpu_.matmul(x.cpu, w.cpu, cpu_rows);
  cuda_->matmul(x.cuda, w.cuda, cuda_rows);
  expect_pair_close(cache, "matmul into cache rows");
}

struct RopeCase {
  int64_t n, heads, head_dim, pos0;
  float theta;
};

TEST_F(CudaBackendTest, RopeMatchesCpu) {
  const std::vector<RopeCase> cases{{1, 4, 64, 0, 10000.0f}, {9, 4, 64, 1000, 10000.0f}, {5, 2, 128, 4090, 10000.0f},
                                    {3, 3, 80, 17, 500000.0f}};
  uint32_t seed = 30;
  for (const RopeCase& rc : cases) {
    Pair x = upload_both(random_bf16_values(rc.n * rc.heads * rc.head_dim, seed++), {rc.n, rc.heads, rc.head_dim});
    cpu_.rope(x.cpu, rc.pos0, rc.theta);
    cuda_->rope(x.cuda, rc.pos0, rc.theta);
    expect_pair_close(x, "rope n " + std::to_string(rc.n) + " D " + std::to_string(rc.head_dim) + " pos0 " +
                             std::to_string(rc.pos0));
  }
}

struct AttentionCase {
  int64_t n, heads, kv_heads, head_dim, pos0;
};

TEST_F(CudaBackendTest, AttentionMatchesCpu) {
  const std::vector<AttentionCase> cases{
      {1, 4, 4, 64, 0},      // first token of a decode
      {1, 8, 2, 128, 100},   // decode step under GQA, several key tiles
      {37, 4, 4, 64, 0},     // prefill: several query and key tiles, causal mask inside tiles
      {20, 8, 2, 128, 45},   // chunked prefill after a cached prefix, GQA
      {33, 6, 3, 80, 7},     // head_dim that is not a power of two
      {70, 32, 8, 128, 0},   // Llama-2-70B-like head layout on one rank
      {16, 2, 1, 32, 500},   // multi-query, long cached prefix
  };
  uint32_t seed = 40;
  for (const AttentionCase& ac : cases) {
    const std::string what = "attention n " + std::to_string(ac.n) + " H " + std::to_string(ac.heads) + " Hkv " +
                             std::to_string(ac.kv_heads) + " D " + std::to_string(ac.head_dim) + " pos0 " +
                             std::to_string(ac.pos0);
    const int64_t filled = ac.pos0 + ac.n, capacity = filled + 5;  // rows past `filled` are never read
    std::vector<float> k_values = random_bf16_values(capacity * ac.kv_heads * ac.head_dim, seed++);
    std::vector<float> v_values = random_bf16_values(capacity * ac.kv_heads * ac.head_dim, seed++);
    // Poison the unfilled rows: a kernel that reads past pos0 + n would produce NaN.
    std::fill(k_values.begin() + filled * ac.kv_heads * ac.head_dim, k_values.end(), std::nanf(""));
    std::fill(v_values.begin() + filled * ac.kv_heads * ac.head_dim, v_values.end(), std::nanf(""));
    Pair q = upload_both(random_bf16_values(ac.n * ac.heads * ac.head_dim, seed++), {ac.n, ac.heads, ac.head_dim});
    Pair k = upload_both(k_values, {capacity, ac.kv_heads, ac.head_dim});
    Pair v = upload_both(v_values, {capacity, ac.kv_heads, ac.head_dim});
    Pair out = empty_both({ac.n, ac.heads, ac.head_dim});
    cpu_.attention(q.cpu, k.cpu, v.cpu, ac.pos0, out.cpu);
    cuda_->attention(q.cuda, k.cuda, v.cuda, ac.pos0, out.cuda);
    expect_pair_close(out, what);
  }
}

TEST_F(CudaBackendTest, AttentionRejectsHeadDimAboveTheKernelMaximum) {
  Tensor q = cuda_->empty({1, 1, 256}, DType::BF16);
  Tensor cache = cuda_->empty({4, 1, 256}, DType::BF16);
  Tensor out = cuda_->empty({1, 1, 256}, DType::BF16);
  EXPECT_THROW(cuda_->attention(q, cache, cache, 0, out), InternalError);
}

TEST_F(CudaBackendTest, SwigluMatchesCpu) {
  const int64_t n = 11, f = 688;
  Pair gate = upload_both(random_bf16_values(n * f, 50, 3.0f), {n, f});
  Pair up = upload_both(random_bf16_values(n * f, 51), {n, f});
  Pair out = empty_both({n, f});
  cpu_.swiglu(gate.cpu, up.cpu, out.cpu);
  cuda_->swiglu(gate.cuda, up.cuda, out.cuda);
  expect_pair_close(out, "swiglu");
}

TEST_F(CudaBackendTest, AddMatchesCpu) {
  const int64_t n = 9, c = 1000;
  Pair x = upload_both(random_bf16_values(n * c, 60), {n, c});
  Pair y = upload_both(random_bf16_values(n * c, 61), {n, c});
  cpu_.add(x.cpu, y.cpu);
  cuda_->add(x.cuda, y.cuda);
  expect_pair_close(x, "add");
}

TEST_F(CudaBackendTest, VocabPartialsMatchCpu) {
  const int64_t n = 6, v = 1000, vocab_begin = 2000;
  std::vector<float> logits = random_bf16_values(n * v, 70, 4.0f);
  // Row 1: a tie for the max at columns 700 and 300 -> the lower id (2300) wins.
  logits[1 * v + 300] = 50.0f;
  logits[1 * v + 700] = 50.0f;
  // Row 2: the max in the first and the last column, the lowest id again.
  logits[2 * v + 0] = 60.0f;
  logits[2 * v + v - 1] = 60.0f;
  // Row 3: a very negative row (exp underflows for most columns).
  for (int64_t j = 0; j < v; ++j) logits[3 * v + j] -= 1000.0f;
  // Targets: inside, first and last id of the slice, below and above it.
  const std::vector<int32_t> targets{2000, 2999, 1999, 3000, 2500, 2123};
  // The lm_head writes fp32 logits, so the GPU sees exactly the CPU's values.
  Pair t = upload_both(logits, {n, v}, DType::F32);
  for (bool with_targets : {true, false}) {
    const std::span<const int32_t> used = with_targets ? std::span<const int32_t>(targets) : std::span<const int32_t>();
    VocabPartials want, got;
    cpu_.vocab_partials(t.cpu, used, vocab_begin, want);
    cuda_->vocab_partials(t.cuda, used, vocab_begin, got);
    EXPECT_EQ(got.max, want.max);
    EXPECT_EQ(got.argmax, want.argmax);
    EXPECT_EQ(got.has_target, want.has_target);
    EXPECT_EQ(got.target_logit, want.target_logit);
    expect_close(got.sum_exp, want.sum_exp, 1e-5f, "sum_exp");
  }
  VocabPartials got;
  cuda_->vocab_partials(t.cuda, targets, vocab_begin, got);
  EXPECT_EQ(got.argmax[1], 2300);
  EXPECT_EQ(got.argmax[2], 2000);
  EXPECT_EQ(got.has_target, (std::vector<uint8_t>{1, 1, 0, 0, 1, 1}));
}

TEST_F(CudaBackendTest, VocabPartialsOfAWideVocabulary) {
  // Llama-2's full vocabulary on one rank: many elements per thread in the single-pass reduction.
  const int64_t n = 3, v = 32000;
  Pair t = upload_both(random_bf16_values(n * v, 80, 3.0f), {n, v}, DType::F32);
  const std::vector<int32_t> targets{0, 31999, 17};
  VocabPartials want, got;
  cpu_.vocab_partials(t.cpu, targets, 0, want);
  cuda_->vocab_partials(t.cuda, targets, 0, got);
  EXPECT_EQ(got.max, want.max);
  EXPECT_EQ(got.argmax, want.argmax);
  EXPECT_EQ(got.target_logit, want.target_logit);
  expect_close(got.sum_exp, want.sum_exp, 1e-5f, "sum_exp");
}

TEST_F(CudaBackendTest, KlPartialsMatchCpu) {
  // The CUDA backend keeps Backend::kl_partials' default (download the fp32 logits, reduce on the host), so on
  // identical fp32 logits the result must be identical.
  const int64_t n = 4, v = 500;
  const std::vector<float> logits = random_bf16_values(n * v, 85, 3.0f);
  std::vector<float> base_logp = random_bf16_values(n * v, 86, 2.0f);
  for (float& b : base_logp) b = -std::fabs(b) - 5.0f;  // log-probabilities: negative
  for (int64_t j = 0; j < v; j += 3) base_logp[j] = -std::numeric_limits<float>::infinity();  // outside a top-k
  const std::vector<double> log_z{10.0, 11.5, 9.25, 12.0};
  const std::vector<double> base_offset{0.0, -0.5, 0.25, -1.0};  // per-row shift of the stored log-probs
  Pair t = upload_both(logits, {n, v}, DType::F32);
  KlPartials want, got;
  cpu_.kl_partials(t.cpu, base_logp, base_offset, log_z, want);
  cuda_->kl_partials(t.cuda, base_logp, base_offset, log_z, got);
  EXPECT_EQ(got.kl, want.kl);
  EXPECT_EQ(got.base_mass, want.base_mass);
  EXPECT_EQ(got.model_mass, want.model_mass);
  EXPECT_EQ(got.model_total, want.model_total);
}

TEST_F(CudaBackendTest, DecoderLayerChainMatchesCpu) {
  // The ops chained as in the forward (norm -> q/k/v -> rope -> attention -> o -> residual -> norm -> swiglu
  // FFN -> residual), so that bf16 roundings compound as they do in a real layer.
  const int64_t n = 12, c = 256, heads = 4, kv_heads = 2, d = 64, f = 512, pos0 = 0;
  uint32_t seed = 90;
  Pair x = upload_both(random_bf16_values(n * c, seed++), {n, c});
  Pair attn_norm_w = upload_both(random_bf16_values(c, seed++, 0.2f), {c});
  Pair ffn_norm_w = upload_both(random_bf16_values(c, seed++, 0.2f), {c});
  auto weight = [&](int64_t rows, int64_t cols) {
    return upload_both(random_bf16_values(rows * cols, seed++, 1.0f / std::sqrt(static_cast<float>(cols))),
                       {rows, cols});
  };
  Pair wq = weight(heads * d, c), wk = weight(kv_heads * d, c), wv = weight(kv_heads * d, c), wo = weight(c, heads * d);
  Pair wgate = weight(f, c), wup = weight(f, c), wdown = weight(c, f);
  Pair k_cache = empty_both({n, kv_heads, d}), v_cache = empty_both({n, kv_heads, d});
  Pair norm = empty_both({n, c}), q = empty_both({n, heads, d}), attn = empty_both({n, heads, d});
  Pair proj = empty_both({n, c}), gate = empty_both({n, f}), up = empty_both({n, f}), act = empty_both({n, f});

  // `side` selects the backend's half of every Pair (&Pair::cpu or &Pair::cuda).
  auto run = [&](Backend& b, Tensor Pair::*side) {
    auto on = [side](Pair& p) -> Tensor& { return p.*side; };
    b.rmsnorm(on(x), on(attn_norm_w), 1e-5f, on(norm));
    b.matmul(on(norm), on(wq), on(q));
    b.matmul(on(norm), on(wk), on(k_cache));
    b.matmul(on(norm), on(wv), on(v_cache));
    b.rope(on(q), pos0, 10000.0f);
    b.rope(on(k_cache), pos0, 10000.0f);
    b.attention(on(q), on(k_cache), on(v_cache), pos0, on(attn));
    Tensor attn_flat = on(attn).reshaped({n, heads * d});
    b.matmul(attn_flat, on(wo), on(proj));
    b.add(on(x), on(proj));
    b.rmsnorm(on(x), on(ffn_norm_w), 1e-5f, on(norm));
    b.matmul(on(norm), on(wgate), on(gate));
    b.matmul(on(norm), on(wup), on(up));
    b.swiglu(on(gate), on(up), on(act));
    b.matmul(on(act), on(wdown), on(proj));
    b.add(on(x), on(proj));
  };
  run(cpu_, &Pair::cpu);
  run(*cuda_, &Pair::cuda);
  expect_pair_close(x, "decoder layer output");
}

}  // namespace
}  // namespace divprune

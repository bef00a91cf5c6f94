// Benchmark: the throughput of divprune's evaluation inner loop on one device, with random weights (no
// checkpoint needed). Per sequence, the work a compressed-model evaluation does (metrics/teacher_forced):
//   1. the teacher-forced forward of seq_len random token ids (LlamaModel::forward, pos0 = 0, tp = 1);
//   2. the vocab reductions: Backend::vocab_partials (log-softmax statistics, argmax, target logit) combined
//      into log Z / argmax / NLL (combine_vocab_partials), then Backend::kl_partials against stored base
//      log-probs.
// The base log-probs are made once, before anything is timed, from an untimed first pass of the same model,
// stored as the library stores them (metrics/base_logprobs.hpp, full mode): fp16-rounded log-probs plus each
// row's log-sum-exp as a double offset. The KL of the timed passes is therefore ~0 (fp16 rounding only) and
// the argmax agreement ~1: both are printed as a check that the work really ran. Backend::kl_partials takes
// the base values as a HOST float32 array (kernels/backend.hpp), so they are kept on the host
// (sequences x seq_len x vocab x 4 bytes: 1 GiB for 16 x 512 x 32000).
//
//   bench_forward --backend cuda --preset 7b --sequences 16 --seq-len 512 --warmup 1 --repeat 3 --json out.json
//
// Weights: uniform with standard deviation 0.02 (norm weights 1), generated matrix by matrix from a
// counter-based generator (deterministic in --seed, independent of the thread count) and uploaded at once in
// the backend's compute dtype (bf16 on CUDA), so the host never holds more than one fp32 matrix (the largest
// is the 32000 x 4096 embedding: 0.5 GB).
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/communicator.hpp"
#include "core/dtype.hpp"
#include "core/errors.hpp"
#include "kernels/backend.hpp"
#include "model/config.hpp"
#include "model/llama.hpp"
#include "model/shard.hpp"
#include "model/vocab_stats.hpp"
#include "model/weights.hpp"

#ifdef DIVPRUNE_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace {

using namespace divprune;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---- Model shapes -----------------------------------------------------------------------------------------------

ModelConfig preset_config(const std::string& preset, int64_t seq_len) {
  ModelConfig c;
  c.vocab_size = 32000;
  c.rope_theta = 10000.0f;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = false;
  c.dtype = DType::BF16;
  c.bos_id = 1;
  c.eos_id = 2;
  if (preset == "7b") {  // Llama-2-7B (meta-llama/Llama-2-7b-hf config.json)
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.num_layers = 32;
    c.num_heads = 32;
    c.num_kv_heads = 32;
    c.max_seq_len = 4096;
  } else if (preset == "tiny") {
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_layers = 6;
    c.num_heads = 8;
    c.num_kv_heads = 8;
    c.max_seq_len = 4096;
  } else {
    throw InputError("--preset must be 7b or tiny, got " + preset);
  }
  c.head_dim = c.hidden_size / c.num_heads;
  c.max_seq_len = std::max(c.max_seq_len, seq_len);
  c.source = "bench_forward --preset " + preset;
  validate_config(c);
  return c;
}

// ---- Deterministic random weights -------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Fills `out` with uniform values of standard deviation `stddev` (range ±stddev·√3). Value i of stream `stream`
// depends only on (seed, stream, i), so the result is the same for any number of threads.
void fill_uniform(std::vector<float>& out, uint64_t seed, uint64_t stream, float stddev) {
  const float half_range = stddev * std::sqrt(3.0f);
  const uint64_t key = splitmix64(seed ^ splitmix64(stream));
  auto fill_range = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const uint64_t bits = splitmix64(key + i);
      const float u = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
      out[i] = (2.0f * u - 1.0f) * half_range;
    }
  };
  const size_t n = out.size();
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 32);
  if (n < (size_t{1} << 20) || threads == 1) {
    fill_range(0, n);
    return;
  }
  std::vector<std::thread> pool;
  const size_t chunk = (n + threads - 1) / threads;
  for (size_t t = 0; t < threads; ++t) {
    const size_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) pool.emplace_back(fill_range, begin, end);
  }
  for (auto& th : pool) th.join();
}

// Builds DeviceWeights for the whole (tp = 1) model, one matrix at a time: generate on the host in fp32, upload
// in the compute dtype, drop the host copy.
DeviceWeights random_weights(Backend& backend, const ModelConfig& c, const ShardLayout& layout, uint64_t seed) {
  constexpr float kStd = 0.02f;
  const DType dt = backend.compute_dtype();
  const int64_t C = c.hidden_size, D = c.head_dim, F = layout.ffn_rows.size(), V = layout.vocab.size();
  const int64_t Hq = layout.heads * D, Hkv = layout.kv_heads * D;
  std::vector<float> host;
  uint64_t stream = 0;
  auto matrix = [&](int64_t rows, int64_t cols) {
    host.resize(static_cast<size_t>(rows * cols));
    fill_uniform(host, seed, stream++, kStd);
    return backend.upload(host, {rows, cols}, dt);
  };
  const std::vector<float> ones(static_cast<size_t>(C), 1.0f);
  auto norm = [&] { return backend.upload(ones, {C}, dt); };

  DeviceWeights w;
  w.embed = matrix(V, C);    // (V, C)
  w.lm_head = matrix(V, C);  // (V, C), untied as in Llama-2
  w.final_norm = norm();     // (C)
  w.layers.resize(static_cast<size_t>(c.num_layers));
  for (DeviceLayer& layer : w.layers) {
    layer.attn_norm = norm();
    layer.ffn_norm = norm();
    layer.linear.q = matrix(Hq, C);     // (H*D, C)
    layer.linear.k = matrix(Hkv, C);    // (Hkv*D, C)
    layer.linear.v = matrix(Hkv, C);    // (Hkv*D, C)
    layer.linear.o = matrix(C, Hq);     // (C, H*D)
    layer.linear.gate = matrix(F, C);   // (F, C)
    layer.linear.up = matrix(F, C);     // (F, C)
    layer.linear.down = matrix(C, F);   // (C, F)
  }
  backend.synchronize();
  return w;
}

// ---- Machine description ----------------------------------------------------------------------------------------

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t start = s.find_first_not_of(' ');
  return start == std::string::npos ? std::string() : s.substr(start);
}

std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[256];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) out += buffer;
  pclose(pipe);
  return out;
}

// The GPU's name from nvidia-smi (the CUDA backend's header offers no device query). nvidia-smi numbers GPUs
// physically; map our index through CUDA_VISIBLE_DEVICES when it is a plain list of integers.
std::string cuda_device_name(int device_index) {
  int physical = device_index;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible != nullptr && *visible != '\0') {
    std::vector<int> ids;
    std::string item;
    bool numeric = true;
    for (const char* p = visible;; ++p) {
      if (*p == ',' || *p == '\0') {
        if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) numeric = false;
        else ids.push_back(std::stoi(item));
        item.clear();
        if (*p == '\0') break;
      } else {
        item += *p;
      }
    }
    if (numeric && device_index < static_cast<int>(ids.size())) physical = ids[static_cast<size_t>(device_index)];
  }
  std::string name = trim(run_command(fmt::format(
      "nvidia-smi -i {} --query-gpu=name --format=csv,noheader 2>/dev/null", physical)));
  if (name.empty() || name.find('\n') != std::string::npos) return "unknown CUDA device";
  return name;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) model = trim(line.substr(colon + 1));
      break;
    }
  }
  return fmt::format("{} ({} threads)", model, std::thread::hardware_concurrency());
}

// Device memory in use (total - free, the CUDA context included), in MiB; nullopt on the CPU backend.
std::optional<double> device_memory_used_mib([[maybe_unused]] const Backend& backend) {
#ifdef DIVPRUNE_HAVE_CUDA
  if (backend.device() == Device::Cuda) {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess)
      return static_cast<double>(total_bytes - free_bytes) / (1024.0 * 1024.0);
    (void)cudaGetLastError();
  }
#endif
  return std::nullopt;
}

double host_peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

// ---- The benchmark ---------------------------------------------------------------------------------------------

struct Options {
  std::string backend = "cuda";
  std::string preset = "7b";
  int64_t sequences = 16;
  int64_t seq_len = 512;
  int warmup = 1;
  int repeat = 3;
  uint64_t seed = 1234;
  int device = 0;
  std::string json_path;
};

// Sums over one pass of all sequences. Phase times are host wall-clock with the device synchronised at the end
// of each phase.
struct PassResult {
  double seconds = 0.0;
  double forward_s = 0.0, vocab_s = 0.0, kl_s = 0.0;
  double nll_sum = 0.0, kl_sum = 0.0, model_mass_sum = 0.0;
  int64_t agree = 0, tokens = 0;
};

// log sum_j exp(row[j]) in double.
double log_sum_exp_row(const float* row, int64_t v) {
  const float mx = *std::max_element(row, row + v);
  double sum = 0.0;
  for (int64_t j = 0; j < v; ++j) sum += std::exp(static_cast<double>(row[j]) - static_cast<double>(mx));
  return static_cast<double>(mx) + std::log(sum);
}

// Base storage of logits (n, V) in the library's full mode: values = fp16-rounded log-softmax (exact in float),
// offset[i] = log-sum-exp of row i of the rounded values, so that values - offset is normalised exactly.
void store_base(std::span<const float> logits, int64_t n, int64_t v, std::span<float> values,
                std::span<double> offset) {
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * v;
    float* dst = values.data() + i * v;
    const double log_z = log_sum_exp_row(row, v);
    for (int64_t j = 0; j < v; ++j)
      dst[j] = half_to_float(float_to_half(static_cast<float>(static_cast<double>(row[j]) - log_z)));
    offset[static_cast<size_t>(i)] = log_sum_exp_row(dst, v);
  }
}

int run(int argc, char** argv) {
  Options opt;
  CLI::App app{"bench_forward: throughput of the teacher-forced forward + vocab reductions, random weights"};
  app.add_option("--backend", opt.backend, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--preset", opt.preset, "7b (Llama-2-7B shapes) or tiny")->check(CLI::IsMember({"7b", "tiny"}));
  app.add_option("--sequences", opt.sequences, "sequences per pass")->check(CLI::PositiveNumber);
  app.add_option("--seq-len", opt.seq_len, "tokens per sequence")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed passes after the base pass")->check(CLI::NonNegativeNumber);
  app.add_option("--repeat", opt.repeat, "timed passes")->check(CLI::PositiveNumber);
  app.add_option("--seed", opt.seed, "seed of the weights and token ids");
  app.add_option("--device", opt.device, "GPU index (cuda backend)")->check(CLI::NonNegativeNumber);
  app.add_option("--json", opt.json_path, "write the results to this JSON file");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  const ModelConfig config = preset_config(opt.preset, opt.seq_len);
  const ShardLayout layout = make_shard_layout(config, TpShard{0, 1});
  const BackendKind kind = opt.backend == "cuda" ? BackendKind::Cuda : BackendKind::Cpu;
  std::unique_ptr<Backend> backend = make_backend(kind, opt.device);
  const std::string device_name = kind == BackendKind::Cuda ? cuda_device_name(opt.device) : cpu_name();
  const std::optional<double> memory_before_weights = device_memory_used_mib(*backend);
  SoloCommunicator comm;

  const int64_t n = opt.seq_len, V = layout.vocab.size(), S = opt.sequences;
  fmt::print("bench_forward: backend {} ({}), preset {}: hidden {}, {} layers, {} heads ({} kv), ffn {}, vocab {}\n",
             opt.backend, device_name, opt.preset, config.hidden_size, config.num_layers, config.num_heads,
             config.num_kv_heads, config.intermediate_size, config.vocab_size);
  fmt::print("bench_forward: {} sequences x {} tokens, warmup {}, repeat {}, seed {}\n", S, n, opt.warmup,
             opt.repeat, opt.seed);

  const auto init_start = Clock::now();
  LlamaModel model(config, layout, *backend, comm, random_weights(*backend, config, layout, opt.seed));
  KvCache cache = model.make_cache(n);
  backend->synchronize();
  const double init_s = seconds_since(init_start);
  fmt::print("bench_forward: random weights built and uploaded in {:.1f} s\n", init_s);

  // Token streams: sequence s reads ids tokens[s][0..n) and predicts targets tokens[s][1..n].
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(S));
  for (int64_t s = 0; s < S; ++s) {
    auto& t = tokens[static_cast<size_t>(s)];
    t.resize(static_cast<size_t>(n + 1));
    const uint64_t key = splitmix64(opt.seed ^ splitmix64(0x70c3e5ull + static_cast<uint64_t>(s)));
    for (int64_t i = 0; i <= n; ++i)
      t[static_cast<size_t>(i)] = static_cast<int32_t>(splitmix64(key + static_cast<uint64_t>(i)) %
                                                       static_cast<uint64_t>(config.vocab_size));
  }
  auto ids_of = [&](int64_t s) { return std::span<const int32_t>(tokens[static_cast<size_t>(s)]).first(n); };
  auto targets_of = [&](int64_t s) {
    return std::span<const int32_t>(tokens[static_cast<size_t>(s)]).subspan(1, static_cast<size_t>(n));
  };

  std::optional<double> peak_memory = memory_before_weights;
  auto sample_memory = [&] {
    if (auto used = device_memory_used_mib(*backend)) peak_memory = std::max(peak_memory.value_or(0.0), *used);
  };

  // Base pass (untimed): each sequence's log-probs, log-softmax on the host, kept on the host (see the top).
  const auto base_start = Clock::now();
  std::vector<std::vector<float>> base_values(static_cast<size_t>(S));
  std::vector<std::vector<double>> base_offset(static_cast<size_t>(S));
  std::vector<std::vector<int32_t>> base_argmax(static_cast<size_t>(S));
  {
    std::vector<float> logits_host(static_cast<size_t>(n * V));
    for (int64_t s = 0; s < S; ++s) {
      Tensor logits = model.forward(ids_of(s), 0, cache);
      backend->download(logits, logits_host);
      auto& values = base_values[static_cast<size_t>(s)];
      auto& offset = base_offset[static_cast<size_t>(s)];
      values.resize(static_cast<size_t>(n * V));
      offset.resize(static_cast<size_t>(n));
      store_base(logits_host, n, V, values, offset);
      auto& am = base_argmax[static_cast<size_t>(s)];
      am.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {  // first maximum = lowest id on ties, as the backends do
        const float* row = logits_host.data() + i * V;
        am[static_cast<size_t>(i)] = static_cast<int32_t>(std::max_element(row, row + V) - row);
      }
      sample_memory();
    }
  }
  fmt::print("bench_forward: base log-probs of {} sequences in {:.1f} s (untimed)\n", S, seconds_since(base_start));

  VocabPartials partials;
  KlPartials kl;
  auto pass = [&] {
    PassResult r;
    const auto pass_start = Clock::now();
    for (int64_t s = 0; s < S; ++s) {
      auto t0 = Clock::now();
      Tensor logits = model.forward(ids_of(s), 0, cache);
      backend->synchronize();
      auto t1 = Clock::now();
      backend->vocab_partials(logits, targets_of(s), layout.vocab.begin, partials);  // returns host results
      const TokenStats stats = combine_vocab_partials(partials, comm, /*with_targets=*/true);
      auto t2 = Clock::now();
      backend->kl_partials(logits, base_values[static_cast<size_t>(s)], base_offset[static_cast<size_t>(s)],
                           stats.log_z, kl);
      backend->synchronize();
      auto t3 = Clock::now();
      r.forward_s += std::chrono::duration<double>(t1 - t0).count();
      r.vocab_s += std::chrono::duration<double>(t2 - t1).count();
      r.kl_s += std::chrono::duration<double>(t3 - t2).count();
      for (int64_t i = 0; i < n; ++i) {
        r.nll_sum += stats.nll[static_cast<size_t>(i)];
        r.kl_sum += kl.kl[static_cast<size_t>(i)];
        r.model_mass_sum += kl.model_mass[static_cast<size_t>(i)];
        r.agree += stats.argmax[static_cast<size_t>(i)] == base_argmax[static_cast<size_t>(s)][static_cast<size_t>(i)];
      }
      r.tokens += n;
    }
    backend->synchronize();
    r.seconds = seconds_since(pass_start);
    return r;
  };

  for (int w = 0; w < opt.warmup; ++w) {
    const PassResult r = pass();
    sample_memory();
    fmt::print("bench_forward: warmup {}: {:.3f} s\n", w + 1, r.seconds);
  }
  std::vector<PassResult> timed;
  for (int rep = 0; rep < opt.repeat; ++rep) {
    timed.push_back(pass());
    fmt::print("bench_forward: repeat {}: {:.3f} s ({:.0f} tokens/s)\n", rep + 1, timed.back().seconds,
               static_cast<double>(timed.back().tokens) / timed.back().seconds);
  }
  sample_memory();

  // FLOPs of one pass (S sequences of n tokens), the convention of the reference numbers:
  //   linears + lm_head: 2 · (L · layer_linear_parameters + V · C) · tokens      (one multiply-add = 2 FLOPs)
  //   attention, causal: L · S · 4 · n² · C / 2  (QK^T and PV are 2·n²·C each for the full square; causal
  //                      attention needs half of it)
  // The embedding lookup, norms, rope, SwiGLU and the vocab reductions are not counted.
  const double pass_tokens = static_cast<double>(S * n);
  const double matmul_params =
      static_cast<double>(config.num_layers * config.layer_linear_parameters() + config.vocab_size * config.hidden_size);
  const double flops_linear = 2.0 * matmul_params * pass_tokens;
  const double flops_attention = static_cast<double>(config.num_layers) * static_cast<double>(S) * 4.0 *
                                 static_cast<double>(n) * static_cast<double>(n) *
                                 static_cast<double>(config.hidden_size) / 2.0;
  const double flops = flops_linear + flops_attention;

  std::vector<double> seconds;
  for (const auto& r : timed) seconds.push_back(r.seconds);
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  const double median_s = sorted.size() % 2 == 1 ? sorted[sorted.size() / 2]
                                                 : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
  const double best_s = sorted.front();
  // Phase breakdown and checks from the median pass (the one closest to the median time).
  const PassResult& mid = *std::min_element(timed.begin(), timed.end(), [&](const PassResult& a, const PassResult& b) {
    return std::abs(a.seconds - median_s) < std::abs(b.seconds - median_s);
  });
  const double tokens_per_s = pass_tokens / median_s;
  const double tflops = flops / median_s / 1e12;
  const double ms_per_seq = 1e3 * median_s / static_cast<double>(S);
  const double mean_nll = mid.nll_sum / static_cast<double>(mid.tokens);
  const double mean_kl = mid.kl_sum / static_cast<double>(mid.tokens);
  const double mean_mass = mid.model_mass_sum / static_cast<double>(mid.tokens);
  const double agreement = static_cast<double>(mid.agree) / static_cast<double>(mid.tokens);
  const double per_seq = 1e3 / static_cast<double>(S);

  fmt::print("\nbench_forward results ({}, {} preset, {} x {} tokens)\n", device_name, opt.preset, S, n);
  fmt::print("  tokens/s          {:.0f} (median of {}), best {:.0f}\n", tokens_per_s, opt.repeat, pass_tokens / best_s);
  fmt::print("  TFLOP/s           {:.2f} ({:.3f} TFLOP per pass)\n", tflops, flops / 1e12);
  fmt::print("  ms per sequence   {:.2f}: forward {:.2f}, vocab_partials {:.2f}, kl_partials {:.2f}\n", ms_per_seq,
             mid.forward_s * per_seq, mid.vocab_s * per_seq, mid.kl_s * per_seq);
  if (peak_memory)
    fmt::print("  device memory     {:.0f} MiB peak in use (cudaMemGetInfo, context included; {:.0f} MiB before weights)\n",
               *peak_memory, memory_before_weights.value_or(0.0));
  fmt::print("  host peak RSS     {:.0f} MiB\n", host_peak_rss_mib());
  fmt::print("  checks            mean NLL {:.4f} (ln V = {:.4f}), mean KL vs base {:.3e}, argmax agreement {:.4f}, "
             "model mass {:.6f}\n",
             mean_nll, std::log(static_cast<double>(config.vocab_size)), mean_kl, agreement, mean_mass);

  if (!opt.json_path.empty()) {
    json j;
    j["tool"] = "bench_forward";
    j["backend"] = opt.backend;
    j["device"] = device_name;
    j["preset"] = opt.preset;
    j["config"] = {{"hidden_size", config.hidden_size},     {"intermediate_size", config.intermediate_size},
                   {"num_layers", config.num_layers},       {"num_heads", config.num_heads},
                   {"num_kv_heads", config.num_kv_heads},   {"head_dim", config.head_dim},
                   {"vocab_size", config.vocab_size},       {"compute_dtype", std::string(dtype_name(backend->compute_dtype()))},
                   {"parameters", config.parameter_count()}};
    j["workload"] = {{"sequences", S},          {"seq_len", n},           {"warmup", opt.warmup},
                     {"repeat", opt.repeat},    {"seed", opt.seed},       {"tokens_per_pass", S * n},
                     {"sequences_per_forward", 1},
                     {"base_logprobs", "host: fp16-rounded values as float32 + double row offsets (Backend::kl_partials)"}};
    j["flops"] = {{"per_pass", flops},
                  {"linear_and_lm_head", flops_linear},
                  {"attention", flops_attention},
                  {"formula", "2*(L*layer_linear_params + V*C)*tokens + L*sequences*4*seq_len^2*C/2"}};
    j["seconds_per_pass"] = seconds;
    j["median_s"] = median_s;
    j["best_s"] = best_s;
    j["tokens_per_s"] = tokens_per_s;
    j["tokens_per_s_best"] = pass_tokens / best_s;
    j["tflops"] = tflops;
    j["ms_per_sequence"] = ms_per_seq;
    j["ms_per_sequence_breakdown"] = {{"forward", mid.forward_s * per_seq},
                                      {"vocab_partials", mid.vocab_s * per_seq},
                                      {"kl_partials", mid.kl_s * per_seq}};
    j["peak_device_memory_mib"] = peak_memory ? json(*peak_memory) : json(nullptr);
    j["device_memory_before_weights_mib"] = memory_before_weights ? json(*memory_before_weights) : json(nullptr);
    j["host_peak_rss_mib"] = host_peak_rss_mib();
    j["init_s"] = init_s;
    j["checks"] = {{"mean_nll", mean_nll},
                   {"mean_kl_vs_base", mean_kl},
                   {"argmax_agreement", agreement},
                   {"mean_model_mass", mean_mass}};
    std::ofstream out(opt.json_path);
    if (!out) throw InputError("--json: cannot write " + opt.json_path);
    out << j.dump(2) << "\n";
    fmt::print("bench_forward: wrote {}\n", opt.json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const divprune::InputError& e) {
    fmt::print(stderr, "bench_forward: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_forward: {}\n", e.what());
    return 1;
  }
}

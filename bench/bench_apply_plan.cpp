// Benchmark: how long building a plan's working copy takes (compress/apply.hpp: apply_plan), on the CPU
// backend at tp = 1. The headline case is 50% magnitude pruning of every linear projection of
// tiny-llama2-trained (a whole-matrix exact selection per matrix); the other operators are timed for scale.
//
//   bench_apply_plan [MODEL_DIR] [REPEATS]
// MODEL_DIR defaults to $DIVPRUNE_ASSETS/tiny-llama2-trained, else ../shared/assets/tiny-llama2-trained.
// Prints one line per plan: median and min milliseconds of apply_plan, and of the compression alone.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "compress/apply.hpp"
#include "compress/plan.hpp"
#include "core/communicator.hpp"
#include "kernels/backend.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/weights.hpp"

namespace {

using namespace divprune;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Timing {
  double median = 0.0, min = 0.0;
};

Timing summarize(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return {samples[samples.size() / 2], samples.front()};
}

CompressionPlan every_component(const ModelConfig& config, std::initializer_list<Component> names,
                                std::optional<PruneSpec> prune, QuantMethod quant = QuantMethod::None) {
  CompressionPlan plan = CompressionPlan::identity(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l)
    for (Component c : names) {
      plan.at(l, c).prune = prune;
      plan.at(l, c).quant = quant;
    }
  return plan;
}

int run(int argc, char** argv) {
  std::filesystem::path model_dir;
  if (argc > 1) {
    model_dir = argv[1];
  } else {
    const char* env = std::getenv("DIVPRUNE_ASSETS");
    model_dir = std::filesystem::path(env != nullptr && *env != '\0' ? env : "../shared/assets") / "tiny-llama2-trained";
  }
  const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 20;

  const auto load_start = Clock::now();
  const auto checkpoint = open_checkpoint(model_dir);
  const ModelConfig& config = checkpoint->config();
  const HostWeights pristine = load_host_weights(*checkpoint, make_shard_layout(config, {0, 1}));
  const auto backend = make_backend(BackendKind::Cpu);
  SoloCommunicator comm;
  LlamaModel model(config, pristine.layout, *backend, comm, upload_weights(*backend, pristine));
  fmt::print("model {} ({} layers, hidden {}, {} SwiGLU channels, {} linear entries); loaded in {:.0f} ms; {} repeats\n",
             model_dir.string(), config.num_layers, config.hidden_size, config.intermediate_size,
             config.num_layers * config.layer_linear_parameters(), ms_since(load_start), repeats);

  const std::initializer_list<Component> all = {Component::Q,    Component::K,  Component::V,   Component::O,
                                                Component::Gate, Component::Up, Component::Down};
  const std::initializer_list<Component> mlp = {Component::Gate, Component::Up, Component::Down};
  const std::initializer_list<Component> attn = {Component::Q, Component::K, Component::V, Component::O};
  struct Case {
    std::string name;
    CompressionPlan plan;  // built in code: validated once below, before the timing
  };
  std::vector<Case> cases = {
      {"magnitude 0.5, all linears", every_component(config, all, PruneSpec{PruneMethod::Magnitude, 0.5})},
      {"magnitude_row 0.5, all linears", every_component(config, all, PruneSpec{PruneMethod::MagnitudeRow, 0.5})},
      {"2:4, gate/up/down", every_component(config, mlp, PruneSpec{PruneMethod::TwoFour, 0.5})},
      {"int8, all linears", every_component(config, all, std::nullopt, QuantMethod::Int8)},
      {"channels 0.25, gate/up/down", every_component(config, mlp, PruneSpec{PruneMethod::Channels, 0.25})},
      {"identity (re-upload only)", CompressionPlan::identity(config.num_layers)},
  };
  if (config.num_kv_heads % 4 == 0)
    cases.push_back({"heads 0.25, q/k/v/o", every_component(config, attn, PruneSpec{PruneMethod::Heads, 0.25})});

  fmt::print("{:<32} {:>12} {:>10} {:>16} {:>10}\n", "plan", "apply med ms", "min ms", "compress med ms", "min ms");
  for (const Case& c : cases) {
    const ValidatedPlan plan = validate_plan(c.plan, config, c.name);
    apply_plan(plan, pristine, model);  // warm-up
    std::vector<double> apply_ms, compress_ms;
    for (int r = 0; r < repeats; ++r) {
      auto start = Clock::now();
      apply_plan(plan, pristine, model);
      apply_ms.push_back(ms_since(start));
      start = Clock::now();
      for (int64_t l = 0; l < config.num_layers; ++l)
        for (Component comp : all) {
          const HostMatrix m = compress_linear(plan, config, pristine, l, comp, comm);
          if (m.data.empty()) std::abort();  // keeps the work observable
        }
      compress_ms.push_back(ms_since(start));
    }
    const Timing a = summarize(apply_ms), k = summarize(compress_ms);
    fmt::print("{:<32} {:>12.2f} {:>10.2f} {:>16.2f} {:>10.2f}\n", c.name, a.median, a.min, k.median, k.min);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_apply_plan: {}\n", e.what());
    return 1;
  }
}

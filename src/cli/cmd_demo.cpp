// divprune demo: a smoke test that needs no assets (the demo *search* is `divprune run`, configs/demo.yaml).
// Writes a synthetic checkpoint (deterministic from --seed), prints its info, a greedy generation from BOS, and
// the perplexity of sequences sampled from the model itself. stdout is byte-identical from run to run; the
// timing goes to the log (stderr).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/command.hpp"
#include "core/errors.hpp"
#include "metrics/perplexity.hpp"
#include "model/checkpoint.hpp"
#include "model/generate.hpp"
#include "model/sampling.hpp"
#include "model/synthetic.hpp"

namespace divprune {

namespace {

class DemoCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--out-dir", dir_, "Where the synthetic checkpoint is written")->capture_default_str();
    sub.add_option("--seed", spec_.seed, "Seed of the synthetic weights and of the sampled text")->capture_default_str();
    sub.add_option("--sequences", sequences_, "Sequences sampled for the perplexity")->capture_default_str();
    sub.add_option("--length", length_, "Tokens per sampled sequence")->capture_default_str();
  }

  int run(const Topology& topology, const ExecutionOptions& exec) override {
    const auto start = std::chrono::steady_clock::now();
    world_step([&] {
      if (topology.is_coordinator()) write_synthetic_checkpoint(dir_, spec_);
    });
    std::unique_ptr<Checkpoint> checkpoint;
    world_step([&] { checkpoint = open_checkpoint(dir_); });
    if (topology.is_coordinator()) {
      fmt::print("== synthetic model (seed {}) ==\n", spec_.seed);
      print_checkpoint_info(*checkpoint, dir_);
    }
    ModelReplica replica(topology, replica_options(dir_, exec));
    const int32_t bos = replica.config().bos_id;
    std::vector<int32_t> greedy;
    world_step([&] { greedy = greedy_generate(replica.model(), std::vector<int32_t>{bos}, 32); });
    if (topology.is_coordinator()) fmt::print("\n== greedy generation from BOS (32 tokens) ==\n{}\n", fmt::join(greedy, " "));
    std::vector<std::vector<int32_t>> samples;
    world_step([&] {
      if (length_ < 1 || length_ + 1 > replica.config().max_seq_len)
        throw InputError(fmt::format("--length must be in [1, {}]", replica.config().max_seq_len - 1));
      samples = sample_sequences(replica.model(), sequences_, length_, spec_.seed);
    });
    NllSum total = replicated_perplexity(replica.workers(), samples, topology, bos);
    if (topology.is_coordinator()) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      fmt::print("\n== perplexity of {} sampled sequences x {} tokens ==\n", sequences_, length_);
      spdlog::info("demo finished in {:.1f} s", seconds);
      fmt::print("ppl {:.4f} tokens {}\n", total.perplexity(), total.tokens);
    }
    return 0;
  }

 private:
  std::string dir_ = "divprune-demo-model";
  SyntheticSpec spec_;
  int64_t sequences_ = 8;
  int64_t length_ = 128;
};

}  // namespace

std::unique_ptr<Command> make_demo_command() { return std::make_unique<DemoCommand>(); }

}  // namespace divprune

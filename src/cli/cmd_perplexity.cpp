// divprune perplexity: the protocol of ../shared/assets/README.md. Last stdout line: `ppl <value> tokens <n>`.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "cli/calibration_option.hpp"
#include "cli/command.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "metrics/corpus.hpp"
#include "metrics/perplexity.hpp"
#include "model/tokenizer.hpp"
#include "parallel/world.hpp"

namespace divprune {

namespace {

class PerplexityCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory or llama2.c .bin")->required();
    sub.add_option("--plan", plan_, "Compression plan (YAML) applied to the model first (see configs/plans/)");
    sub.add_option("--tokenizer", tokenizer_, "SentencePiece .model (Llama-2's tokenizer.model)")->required();
    sub.add_option("--text", text_, "Text file, scored line by line (blank lines skipped)")->required();
    sub.add_option("--ctx", ctx_, "Tokens per chunk; each chunk is scored after BOS")->capture_default_str();
    calibration_.add_to(sub);
  }

  int run(const Topology& topology, const ExecutionOptions& exec) override {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::vector<int32_t>> chunks;
    world_step([&] {
      if (!plan_.empty()) require_regular_file(plan_, "the plan file");  // before the model is loaded
      Tokenizer tokenizer(tokenizer_);
      chunks = chunk_stream(tokenize_corpus(tokenizer, text_), ctx_);
    });
    ModelReplica replica(topology, replica_options(model_, exec));
    // collective; a bad plan fails every rank alike
    if (!plan_.empty()) apply_plan_with_calibration(plan_, calibration_, tokenizer_, replica);
    world_step([&] {
      if (ctx_ + 1 > replica.config().max_seq_len)
        throw InputError(fmt::format("--ctx {} + BOS exceeds the model's context {}", ctx_, replica.config().max_seq_len));
    });
    size_t local_chunks = 0;
    NllSum total = replicated_perplexity(replica.workers(), chunks, topology, replica.config().bos_id, &local_chunks);
    world_step([&] {  // known on every rank: fails everywhere alike, printed once
      if (total.first_nonfinite_chunk >= 0)
        throw InputError(fmt::format("{}: chunk {} of {} (--ctx {}) has a non-finite NLL: the model {}{} produces "
                                     "non-finite logits (weights or activations overflow)",
                                     text_, total.first_nonfinite_chunk, chunks.size(), ctx_, model_,
                                     plan_.empty() ? "" : " with the plan " + plan_));
    });
    // Only the coordinator logs at info level: it reports every replica's share.
    const std::vector<int64_t> shares = gather_on_coordinator(static_cast<int64_t>(local_chunks));
    for (int r = 0; r < topology.replicas && topology.is_coordinator(); ++r)
      spdlog::info("replica {} scored {} of {} chunks", r, shares[static_cast<size_t>(r * topology.tp)], chunks.size());
    if (topology.is_coordinator()) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      spdlog::info("{} chunks of up to {} tokens in {:.1f} s ({:.0f} tokens/s)", chunks.size(), ctx_, seconds,
                   total.tokens / seconds);
      fmt::print("ppl {:.4f} tokens {}\n", total.perplexity(), total.tokens);
    }
    return 0;
  }

 private:
  std::string plan_;
  CalibrationOption calibration_;
  std::string model_, tokenizer_, text_;
  int64_t ctx_ = 256;
};

}  // namespace

std::unique_ptr<Command> make_perplexity_command() { return std::make_unique<PerplexityCommand>(); }

}  // namespace divprune

// divprune generate: greedy continuation. Prints the new token ids on one line, then the text when a
// tokenizer is given. A text prompt is encoded and preceded by BOS; --prompt-ids are used as given.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <limits>
#include <sstream>

#include "cli/command.hpp"
#include "core/errors.hpp"
#include "model/generate.hpp"
#include "model/tokenizer.hpp"

namespace divprune {

namespace {

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      const long long value = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      // Checked before narrowing: 4294967297 must not wrap around to token 1.
      if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max())
        throw InputError(fmt::format("--prompt-ids: {} is out of range for a token id", item));
      ids.push_back(static_cast<int32_t>(value));
    } catch (const InputError&) {
      throw;
    } catch (const std::exception&) {
      throw InputError(fmt::format("--prompt-ids: \"{}\" is not an integer (expected e.g. 1,2,3)", item));
    }
  }
  return ids;
}

class GenerateCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory or llama2.c .bin")->required();
    sub.add_option("--tokenizer", tokenizer_, "SentencePiece .model: needed for --prompt, decodes the output");
    auto* text = sub.add_option("--prompt", prompt_, "Prompt text (encoded with --tokenizer, BOS prepended)");
    auto* ids = sub.add_option("--prompt-ids", prompt_ids_, "Prompt token ids, comma separated (e.g. 1 for BOS)");
    text->excludes(ids);
    sub.add_option("-n,--tokens", count_, "Number of tokens to generate")->capture_default_str();
  }

  int run(const Topology& topology, const ExecutionOptions& exec) override {
    std::unique_ptr<Tokenizer> tokenizer;
    std::vector<int32_t> prompt;
    world_step([&] {
      if (prompt_.empty() == prompt_ids_.empty()) throw InputError("generate: give exactly one of --prompt or --prompt-ids");
      if (!tokenizer_.empty()) tokenizer = std::make_unique<Tokenizer>(tokenizer_);
      if (!prompt_.empty()) {
        if (!tokenizer) throw InputError("generate: --prompt needs --tokenizer");
        prompt.push_back(1);
        for (int32_t id : tokenizer->encode(prompt_)) prompt.push_back(id);
      } else {
        prompt = parse_ids(prompt_ids_);
      }
    });
    ModelReplica replica(topology, replica_options(model_, exec));
    world_step([&] {
      const int64_t vocab = replica.config().vocab_size;
      for (int32_t id : prompt)
        if (id < 0 || id >= vocab)
          throw InputError(fmt::format("{}: token id {} is outside the vocabulary [0, {}) of the model {}",
                                       prompt_.empty() ? "--prompt-ids" : "--prompt", id, vocab, model_));
    });
    std::vector<int32_t> out;
    world_step([&] { out = greedy_generate(replica.model(), prompt, count_); });
    if (topology.is_coordinator()) {
      fmt::print("{}\n", fmt::join(out, " "));
      if (tokenizer) fmt::print("{}\n", tokenizer->decode(out));
    }
    return 0;
  }

 private:
  std::string model_, tokenizer_, prompt_, prompt_ids_;
  int64_t count_ = 32;
};

}  // namespace

std::unique_ptr<Command> make_generate_command() { return std::make_unique<GenerateCommand>(); }

}  // namespace divprune

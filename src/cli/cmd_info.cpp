// divprune info --model PATH: what a checkpoint is, without loading its weights.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "cli/command.hpp"
#include "model/checkpoint.hpp"

namespace divprune {

void print_checkpoint_info(const Checkpoint& checkpoint, const std::string& model) {
    const ModelConfig& c = checkpoint.config();
    fmt::print("model              {}\n", model);
    fmt::print("format             {}\n", checkpoint.format());
    fmt::print("dtype              {}\n", dtype_name(c.dtype));
    fmt::print("layers             {}\n", c.num_layers);
    fmt::print("hidden_size        {}\n", c.hidden_size);
    fmt::print("intermediate_size  {}\n", c.intermediate_size);
    fmt::print("attention          {} heads, {} kv heads ({}), head_dim {}\n", c.num_heads, c.num_kv_heads,
               c.num_heads == c.num_kv_heads ? "MHA" : "GQA", c.head_dim);
    fmt::print("vocab_size         {}\n", c.vocab_size);
    fmt::print("max_seq_len        {}\n", c.max_seq_len);
    fmt::print("rope_theta         {}\n", c.rope_theta);
    fmt::print("rms_norm_eps       {}\n", c.rms_norm_eps);
    fmt::print("tied embeddings    {}\n", c.tie_word_embeddings ? "yes" : "no");
    fmt::print("parameters         {} ({:.2f}M)\n", c.parameter_count(), c.parameter_count() / 1e6);
    // config.json first, then the shards by name (the checkpoint lists them in weight_map order).
    std::vector<std::string> files = checkpoint.files();
    if (files.size() > 2) std::sort(files.begin() + 1, files.end());
    for (const std::string& file : files) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(file, ec);
      fmt::print("file               {} ({} bytes)\n", file, ec ? 0 : size);
    }
}

namespace {

class InfoCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory (config.json + safetensors) or llama2.c .bin")
        ->required();
  }

  int run(const Topology& topology, const ExecutionOptions&) override {
    std::unique_ptr<Checkpoint> checkpoint;
    world_step([&] { checkpoint = open_checkpoint(model_); });
    if (!topology.is_coordinator()) return 0;
    print_checkpoint_info(*checkpoint, model_);
    return 0;
  }

 private:
  std::string model_;
};

}  // namespace

std::unique_ptr<Command> make_info_command() { return std::make_unique<InfoCommand>(); }

}  // namespace divprune

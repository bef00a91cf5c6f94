// divprune logits: reads int32 `input_ids` [batch, seq] from an HDF5 file and writes float32 `logits`
// [batch, seq, vocab] (teacher-forced, position i predicts token i+1). Batch rows are spread over replicas;
// the coordinator writes the file.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <unistd.h>

#include "archive/h5.hpp"
#include "cli/calibration_option.hpp"
#include "cli/command.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "parallel/gather_logits.hpp"
#include "parallel/world.hpp"

namespace divprune {

namespace {

// Writes `path` through `write` under a temporary name beside it (PATH.partial-PID) and renames it to `path` only
// when `write` returned: a write that fails (a full disk, a kill) never leaves a file at `path` that looks
// complete, e.g. a full-shape logits dataset of zeros. On failure the temporary file is removed.
void write_complete_file(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string partial = fmt::format("{}.partial-{}", path, ::getpid());
  try {
    write(partial);
    std::error_code ec;
    std::filesystem::rename(partial, path, ec);
    if (ec) throw IoError(fmt::format("{}: cannot rename the written {} to it: {}", path, partial, ec.message()));
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(partial, ignored);
    throw;
  }
}

class LogitsCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("--model", model_, "Hugging Face directory or llama2.c .bin")->required();
    sub.add_option("--plan", plan_, "Compression plan (YAML) applied to the model first (see configs/plans/)");
    sub.add_option("--input", input_, "HDF5 file with int32 dataset input_ids [batch, seq]")->required();
    sub.add_option("--out", out_, "HDF5 file to write (dataset logits [batch, seq, vocab], float32)")->required();
    sub.add_option("--tokenizer", tokenizer_, "SentencePiece .model, to tokenise --calibration");
    calibration_.add_to(sub);
  }

  int run(const Topology& topology, const ExecutionOptions& exec) override {
    std::vector<int32_t> ids;
    Shape dims;
    world_step([&] {
      require_regular_file(input_, "the input file");  // a FIFO would block HDF5's open forever
      require_output_file_path(out_, "--out");
      if (!plan_.empty()) require_regular_file(plan_, "the plan file");  // before the model is loaded
      H5File in(input_, H5Mode::Read);
      ids = in.read_int32("input_ids", &dims);
      if (dims.size() != 2)
        throw InputError(fmt::format("{}: input_ids must be 2-D [batch, seq], found {}", input_, shape_string(dims)));
      if (dims[0] < 1 || dims[1] < 1)
        throw InputError(fmt::format("{}: input_ids must hold at least one sequence of at least one token, found {}",
                                     input_, shape_string(dims)));
    });
    ModelReplica replica(topology, replica_options(model_, exec));
    // collective; a bad plan fails every rank alike
    if (!plan_.empty()) apply_plan_with_calibration(plan_, calibration_, tokenizer_, replica);
    const int64_t batch = dims[0], seq = dims[1], vocab = replica.config().vocab_size;
    world_step([&] {
      if (seq > replica.config().max_seq_len)
        throw InputError(fmt::format("{}: seq {} exceeds the model's context {}", input_, seq, replica.config().max_seq_len));
      for (int32_t id : ids)
        if (id < 0 || id >= vocab)
          throw InputError(fmt::format("{}: input_ids holds {} outside the vocabulary [0, {})", input_, id, vocab));
    });
    KvCache cache = replica.model().make_cache(seq);
    std::vector<float> all;
    if (topology.is_coordinator()) all.resize(static_cast<size_t>(batch * seq * vocab));
    for (int64_t b = 0; b < batch; ++b) {
      const int owner = static_cast<int>(b % topology.replicas);
      const int owner_leader = owner * topology.tp;
      std::vector<float> row;
      if (owner == topology.replica) {
        Tensor logits = replica.model().forward(std::span<const int32_t>(ids.data() + b * seq, seq), 0, cache);
        row = gather_vocab_slices(replica.model(), logits, topology);
      }
      const std::vector<float> arrived = move_to_coordinator(row, owner_leader);
      if (topology.is_coordinator()) std::copy(arrived.begin(), arrived.end(), all.begin() + b * seq * vocab);
    }
    world_step([&] {
      if (!topology.is_coordinator()) return;
      // A NaN or Inf logit means the forward overflowed: say where instead of writing a file of NaNs.
      const auto bad = std::find_if(all.begin(), all.end(), [](float v) { return !std::isfinite(v); });
      if (bad != all.end()) {
        const int64_t i = bad - all.begin();
        throw InputError(fmt::format("{}: the model {}{} gives a non-finite logit ({}) for input_ids[{}, {}] (weights or "
                                     "activations overflow); {} not written",
                                     input_, model_, plan_.empty() ? "" : " with the plan " + plan_, *bad,
                                     i / (seq * vocab), i / vocab % seq, out_));
      }
      write_complete_file(out_, [&](const std::string& path) {
        H5File out(path, H5Mode::Truncate);
        out.write_float("logits", {batch, seq, vocab}, all.data(), 1);
        out.close();  // a failed close (full disk) must throw here, before the rename
      });
      spdlog::info("wrote logits [{}, {}, {}] to {}", batch, seq, vocab, out_);
    });
    return 0;
  }

 private:
  std::string plan_, tokenizer_;
  CalibrationOption calibration_;
  std::string model_, input_, out_;
};

}  // namespace

std::unique_ptr<Command> make_logits_command() { return std::make_unique<LogitsCommand>(); }

}  // namespace divprune

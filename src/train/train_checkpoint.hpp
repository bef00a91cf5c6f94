#pragma once
// A training checkpoint on disk: the Trainer's state (step, parameters, AdamW moments) and the loss curve so far,
// tagged with a key (the heal stage uses the healed plan's hash, which covers the plan, the settings and the
// text), so a file of another run is never resumed from.
//
// Format (little-endian, native float): "DPTRAIN1", u64 key length, key bytes, i64 step, u64 parameter count,
// params, m, v (float32 each), u64 curve length, per entry i64 step, f64 loss, f64 grad_norm, f64 lr, i64 tokens,
// f64 training seconds so far. Written to PATH.tmp and renamed over PATH, so a job killed while writing leaves
// the previous checkpoint (or none), never a torn one.
#include <filesystem>
#include <optional>
#include <string>

#include "train/heal.hpp"

namespace divprune::train {

struct TrainCheckpoint {
  HealResume resume;
  double seconds = 0.0;  // training time spent up to the checkpoint
};

// IoError when the file cannot be written.
void write_train_checkpoint(const std::filesystem::path& path, const std::string& key, const TrainCheckpoint& checkpoint);
// std::nullopt when there is no file; InputError naming the file when it is truncated, not a checkpoint, or
// carries another key.
std::optional<TrainCheckpoint> read_train_checkpoint(const std::filesystem::path& path, const std::string& key);

}  // namespace divprune::train

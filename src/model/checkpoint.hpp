#pragma once
// A checkpoint: a model config plus named tensors that can be read in slices and converted to fp32.
// Tensor names follow Hugging Face (`model.layers.3.self_attn.q_proj.weight`); the llama2.c reader exposes
// its tensors under the same names (and in the same rotate-half q/k layout), so one loader serves both.
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "model/config.hpp"
#include "model/shard.hpp"

namespace divprune {

struct TensorMeta {
  DType dtype = DType::F32;
  Shape shape;
  std::string file;
};

class Checkpoint {
 public:
  virtual ~Checkpoint() = default;
  virtual const ModelConfig& config() const = 0;
  virtual std::vector<std::string> files() const = 0;
  virtual std::string format() const = 0;  // "safetensors" or "llama2.c"
  virtual bool contains(const std::string& name) const = 0;
  // Throws InputError "missing tensor" naming the checkpoint.
  virtual TensorMeta meta(const std::string& name) const = 0;
  // Copies rows [rows.begin, rows.end) × columns [cols.begin, cols.end) of 2-D tensor `name` into out as fp32.
  // A 1-D tensor is read as one row.
  virtual void read(const std::string& name, Range rows, Range cols, std::span<float> out) const = 0;
};

// A directory (config.json + model.safetensors or model.safetensors.index.json) or a llama2.c `.bin` file.
std::unique_ptr<Checkpoint> open_checkpoint(const std::filesystem::path& path);

}  // namespace divprune

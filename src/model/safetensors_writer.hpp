#pragma once
// Writer of the safetensors format that model/safetensors.hpp reads: an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets}} padded with spaces to a multiple of 8 bytes, then the raw
// little-endian data of every tensor in header order. Values come in as fp32 and are stored as F32, F16 or BF16
// (round to nearest even). Used by `divprune export` (model/hf_export.hpp).
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/tensor.hpp"

namespace divprune {

struct SafetensorsTensor {
  std::string name;
  Shape shape;                    // product == values.size()
  std::span<const float> values;  // row-major
};

// The bytes `dtype` stores `value` as, or InputError naming `tensor` and the index when a finite fp32 value
// overflows F16 (|v| > 65504) or BF16: a model exported as float16 with an infinite weight would load as NaNs.
void encode_values(std::span<const float> values, DType dtype, const std::string& tensor, std::byte* out);
// float -> bfloat16, round to nearest even (the conversion torch's .to(torch.bfloat16) does).
uint16_t float_to_bf16(float value);

// Writes one safetensors file holding `tensors` in the given order, stored as `dtype`. `metadata` goes to the
// header's "__metadata__" (string values only, as the format requires). IoError when the file cannot be written.
void write_safetensors_file(const std::filesystem::path& path, std::span<const SafetensorsTensor> tensors,
                            DType dtype, const std::vector<std::pair<std::string, std::string>>& metadata = {});

// Writes `tensors` into `dir` the way Hugging Face's save_pretrained does: one `model.safetensors` when their data
// fits in `max_shard_bytes`, otherwise `model-0000i-of-0000n.safetensors` files filled in order up to that many
// data bytes each (a tensor larger than the limit gets a file of its own) plus `model.safetensors.index.json`
// ({"metadata": {"total_size"}, "weight_map": {name: file}}). Returns the file names written.
std::vector<std::string> write_safetensors_shards(const std::filesystem::path& dir,
                                                  std::span<const SafetensorsTensor> tensors, DType dtype,
                                                  uint64_t max_shard_bytes);

}  // namespace divprune

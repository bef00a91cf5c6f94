#pragma once
// `divprune export`: a model's weights written as a Hugging Face Llama directory that transformers loads as a
// plain LlamaForCausalLM and divprune reads back like any checkpoint:
//   config.json        the input's config.json (a llama2.c input gets one written from its header) with
//                      num_hidden_layers = the layers kept, torch_dtype/dtype = the output dtype, and
//                      layer_types (newer configs) without the removed layers
//   model.safetensors  or model-0000i-of-0000n.safetensors + model.safetensors.index.json above the shard size
//   tokenizer files    copied when the input directory has them (tokenizer.model, tokenizer.json, ...)
// Removed layers are left out and the remaining ones renumbered 0..L'-1: a removed layer passes the residual
// stream through, so the shorter model computes exactly what the plan's working copy computes.
//
// The directory appears whole or not at all: everything is written to OUT.partial-PID beside OUT and renamed
// to OUT at the end, so a killed export never leaves a half-written OUT (it may leave the .partial folder).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "model/checkpoint.hpp"
#include "model/weights.hpp"

namespace divprune {

struct HfExportOptions {
  DType dtype = DType::F32;                     // storage dtype of every tensor
  uint64_t max_shard_bytes = 5'000'000'000ull;  // save_pretrained's default "5GB"
  bool force = false;                           // replace an existing model directory at OUT
};

// Checks OUT before any work: InputError when OUT exists and is not a directory, is a non-empty directory and
// `force` is off, is a non-empty directory without config.json (--force only replaces a model directory, never an
// arbitrary folder), or is the input model itself.
void check_export_destination(const std::filesystem::path& out, const std::filesystem::path& model, bool force);

// "5GB", "500MB", "1GiB", "1048576" (bytes) -> bytes; InputError naming `option` otherwise (0 is refused).
uint64_t parse_byte_size(const std::string& text, const std::string& option);

// Writes `weights` (the whole model, tp = 1; e.g. a plan's working copy) of the checkpoint opened from `model`
// (a Hugging Face directory or a llama2.c file) to OUT, leaving out the layers with removed[l]. Tied embeddings
// stay tied when embed and lm_head are equal (no lm_head.weight written), otherwise lm_head is written and
// tie_word_embeddings set to false. InputError for a value that overflows the output dtype; IoError when a
// file cannot be written. Returns the files written (names inside OUT).
std::vector<std::string> export_hf_directory(const Checkpoint& checkpoint, const std::filesystem::path& model,
                                             const HostWeights& weights, const std::vector<bool>& removed,
                                             const std::filesystem::path& out, const HfExportOptions& options);

}  // namespace divprune

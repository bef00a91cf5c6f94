#pragma once
#include <filesystem>
#include <memory>

#include "model/checkpoint.hpp"

namespace divprune {

// llama2.c legacy `.bin`: a 7 × int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means a separate classifier follows), then float32 weights, including the
// legacy freq_cis block which is skipped. q/k rows are permuted on read from llama2.c's interleaved RoPE
// pairs to Hugging Face's rotate-half layout, so the forward needs no second RoPE convention.
std::unique_ptr<Checkpoint> open_llama2c_checkpoint(const std::filesystem::path& path);

}  // namespace divprune

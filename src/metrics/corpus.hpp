#pragma once
// The perplexity protocol of ../shared/assets/README.md, steps 1-3: read a text file line by line, skip lines
// that are blank after stripping, encode each stripped line without BOS, append the newline piece (id 13),
// concatenate, and cut the stream into consecutive chunks of `ctx` tokens (the last may be shorter).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/tokenizer.hpp"

namespace divprune {

constexpr int32_t kNewlineToken = 13;  // "<0x0A>" in Llama-2's SentencePiece model

// The line without leading and trailing whitespace (the protocol's "stripped" line).
std::string strip(const std::string& line);

std::vector<int32_t> tokenize_corpus(const Tokenizer& tokenizer, const std::filesystem::path& text_file);
std::vector<std::vector<int32_t>> chunk_stream(const std::vector<int32_t>& stream, int64_t ctx);

}  // namespace divprune

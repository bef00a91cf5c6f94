#include "metrics/corpus.hpp"

#include <fmt/format.h>

#include <fstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace divprune {

std::string strip(const std::string& line) {
  const char* space = " \t\r\n\v\f";
  const size_t begin = line.find_first_not_of(space);
  if (begin == std::string::npos) return {};
  const size_t end = line.find_last_not_of(space);
  return line.substr(begin, end - begin + 1);
}

std::vector<int32_t> tokenize_corpus(const Tokenizer& tokenizer, const std::filesystem::path& text_file) {
  require_regular_file(text_file, "text file");
  std::ifstream in(text_file);
  if (!in) throw InputError(fmt::format("{}: cannot open text file", text_file.string()));
  std::vector<int32_t> stream;
  std::string line;
  while (std::getline(in, line)) {
    const std::string text = strip(line);
    if (text.empty()) continue;
    const std::vector<int32_t> ids = tokenizer.encode(text);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(kNewlineToken);
  }
  if (stream.empty()) throw InputError(fmt::format("{}: no text to score (every line is blank)", text_file.string()));
  return stream;
}

std::vector<std::vector<int32_t>> chunk_stream(const std::vector<int32_t>& stream, int64_t ctx) {
  if (ctx < 1) throw InputError(fmt::format("--ctx must be at least 1, got {}", ctx));
  std::vector<std::vector<int32_t>> chunks;
  for (size_t begin = 0; begin < stream.size(); begin += static_cast<size_t>(ctx)) {
    const size_t end = std::min(stream.size(), begin + static_cast<size_t>(ctx));
    chunks.emplace_back(stream.begin() + static_cast<std::ptrdiff_t>(begin), stream.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return chunks;
}

}  // namespace divprune

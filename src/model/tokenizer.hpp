#pragma once
// SentencePiece tokenizer (Llama-2's `tokenizer.model`) through libsentencepiece. BOS is never added
// implicitly: callers prepend it where a protocol says so.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace divprune {

class Tokenizer {
 public:
  explicit Tokenizer(const std::filesystem::path& model_file);  // throws InputError naming the file
  ~Tokenizer();
  std::vector<int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t vocab_size() const;
  int32_t bos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::string source_;
};

}  // namespace divprune

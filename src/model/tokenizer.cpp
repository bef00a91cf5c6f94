#include "model/tokenizer.hpp"

#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace divprune {

Tokenizer::Tokenizer(const std::filesystem::path& model_file)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()), source_(model_file.string()) {
  require_regular_file(model_file, "the tokenizer model");
  auto status = processor_->Load(model_file.string());
  if (!status.ok()) throw InputError(fmt::format("{}: not a SentencePiece model: {}", source_, status.ToString()));
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto status = processor_->Encode(text, &ids);
  if (!status.ok()) throw InputError(fmt::format("{}: cannot encode text: {}", source_, status.ToString()));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::vector<int> pieces(ids.begin(), ids.end());
  std::string text;
  auto status = processor_->Decode(pieces, &text);
  if (!status.ok()) throw InputError(fmt::format("{}: cannot decode ids: {}", source_, status.ToString()));
  return text;
}

int32_t Tokenizer::vocab_size() const { return processor_->GetPieceSize(); }
int32_t Tokenizer::bos_id() const { return processor_->bos_id(); }

}  // namespace divprune

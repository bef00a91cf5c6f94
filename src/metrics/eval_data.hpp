#pragma once
// The evaluation data of a run, tokenised once by the baseline stage and stored in the archive (group /data):
//  - perplexity chunks (metrics/corpus.hpp protocol),
//  - prompts for greedy continuations (FDT / SDT),
//  - multiple-choice items (accuracy and flips).
// File formats:
//  - multiple choice: JSONL, one object per line: {"context": "...", "choices": ["...", ...], "answer": i}
//    (answer is the 0-based index of the correct choice);
//  - prompts: JSONL with {"prompt": "..."} (or "text") per line, or plain text with one prompt per non-blank line.
// A multiple-choice task can also be built from any text file (build_next_sentence_task): choose the true next
// sentence of a passage among distractor sentences drawn from elsewhere in the text.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/tokenizer.hpp"
#include "parallel/work_queue.hpp"

namespace divprune {

struct McItem {
  std::string context;
  std::vector<std::string> choices;
  int32_t answer = 0;
};

std::vector<McItem> read_mc_jsonl(const std::filesystem::path& file);  // InputError naming file and line
void write_mc_jsonl(const std::filesystem::path& file, const std::vector<McItem>& items);
std::vector<std::string> read_prompts(const std::filesystem::path& file);

struct NextSentenceOptions {
  int64_t items = 40;
  int64_t choices = 4;            // the true sentence and choices - 1 distractors
  int64_t context_sentences = 2;  // sentences of the passage before the one to guess
  int64_t min_words = 6;          // sentences outside [min_words, max_words] are used neither as answers
  int64_t max_words = 40;         // nor as distractors
  uint64_t seed = 1;
};
// Deterministic for a given file and options (own PRNG, no std:: distributions). Paragraph lines of the text
// are split into sentences at " . " (the WikiText convention); heading lines ("= ... =") are skipped. Items are
// spread evenly over the candidate passages. Throws InputError when the text has too few sentences.
std::vector<McItem> build_next_sentence_task(const std::filesystem::path& text_file, const NextSentenceOptions& options);

// Prompts taken from a text file: `count` non-heading lines with at least `tokens` words, spread evenly over
// the file, each cut to its first `tokens` tokens (no BOS).
std::vector<std::vector<int32_t>> prompts_from_text(const Tokenizer& tokenizer, const std::filesystem::path& text_file,
                                                    int64_t count, int64_t tokens);

// metrics/corpus.hpp's tokenize_corpus, stopping after the line that brings the stream to `max_tokens`
// (0: the whole file): its first max_tokens tokens equal the whole file's.
std::vector<int32_t> tokenize_corpus_prefix(const Tokenizer& tokenizer, const std::filesystem::path& text_file,
                                            int64_t max_tokens);

// Everything the stages feed the model, as token ids (BOS is never included; every sequence is fed after BOS).
struct EvalSet {
  int64_t ctx = 0;                                   // perplexity chunk length
  std::vector<std::vector<int32_t>> chunks;          // perplexity chunks, in stream order
  int64_t kept_chunks = 0;                           // the first kept_chunks chunks keep base log-probs
  std::vector<std::vector<int32_t>> prompts;         // greedy-continuation prompts
  std::vector<std::string> prompt_text;              // (may be empty strings for prompts given as ids)
  int64_t continuation = 0;                          // N: greedy tokens per prompt
  std::vector<std::vector<int32_t>> mc_context;      // (I)
  std::vector<std::vector<std::vector<int32_t>>> mc_choices;  // (I)(choices)
  std::vector<int32_t> mc_answer;                    // (I)
  std::vector<std::string> mc_context_text;          // (I)
  std::vector<std::vector<std::string>> mc_choice_text;       // (I)(choices)

  int64_t tokens() const;        // scored perplexity tokens (sum of chunk lengths)
  int64_t kept_tokens() const;   // tokens of the kept chunks
  int64_t chunk_offset(int64_t chunk) const;  // first token of a chunk in the concatenated stream
  int64_t mc_choice_count() const;            // choices over all items
  int64_t longest_sequence() const;           // longest fed sequence, BOS included
  std::string hash() const;                   // sha256 of every id, length and answer
};

Bytes serialize(const EvalSet& set);
EvalSet deserialize_eval_set(const Bytes& bytes);

}  // namespace divprune

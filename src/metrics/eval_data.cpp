#include "metrics/eval_data.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/sha256.hpp"
#include "metrics/corpus.hpp"

namespace divprune {

namespace {

std::ifstream open_text(const std::filesystem::path& file, const char* what) {
  require_regular_file(file, what);
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("{}: cannot open {}", file.string(), what));
  return in;
}

// splitmix64: a small, fully specified PRNG (std::uniform_int_distribution differs between libraries).
struct SplitMix {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // bias < n / 2^64: irrelevant here
};

int64_t word_count(const std::string& s) {
  std::istringstream in(s);
  std::string w;
  int64_t n = 0;
  while (in >> w) ++n;
  return n;
}

bool is_heading(const std::string& line) { return line.size() >= 2 && line.front() == '=' && line.back() == '='; }

}  // namespace

std::vector<McItem> read_mc_jsonl(const std::filesystem::path& file) {
  std::ifstream in = open_text(file, "the multiple-choice file");
  std::vector<McItem> items;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (strip(line).empty()) continue;
    const std::string where = fmt::format("{}:{}", file.string(), number);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}: not a JSON object ({})", where, e.what()));
    }
    if (!j.is_object() || !j.contains("context") || !j["context"].is_string())
      throw InputError(fmt::format("{}: expected {{\"context\": str, \"choices\": [str, ...], \"answer\": int}}", where));
    McItem item;
    item.context = j["context"].get<std::string>();
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
      throw InputError(fmt::format("{}: \"choices\" must be a list of at least 2 strings", where));
    for (const auto& c : j["choices"]) {
      if (!c.is_string()) throw InputError(fmt::format("{}: every choice must be a string", where));
      item.choices.push_back(c.get<std::string>());
    }
    if (!j.contains("answer") || !j["answer"].is_number_integer())
      throw InputError(fmt::format("{}: \"answer\" must be an integer index into choices", where));
    const int64_t answer = j["answer"].get<int64_t>();
    if (answer < 0 || answer >= static_cast<int64_t>(item.choices.size()))
      throw InputError(fmt::format("{}: answer {} is not an index into {} choices", where, answer, item.choices.size()));
    item.answer = static_cast<int32_t>(answer);
    items.push_back(std::move(item));
  }
  if (items.empty()) throw InputError(fmt::format("{}: no multiple-choice items", file.string()));
  return items;
}

void write_mc_jsonl(const std::filesystem::path& file, const std::vector<McItem>& items) {
  std::ofstream out(file);
  if (!out) throw InputError(fmt::format("{}: cannot write the multiple-choice file", file.string()));
  for (const McItem& item : items) {
    nlohmann::json j = {{"context", item.context}, {"choices", item.choices}, {"answer", item.answer}};
    out << j.dump() << "\n";
  }
}

std::vector<std::string> read_prompts(const std::filesystem::path& file) {
  std::ifstream in = open_text(file, "the prompts file");
  const bool jsonl = file.extension() == ".jsonl" || file.extension() == ".json";
  std::vector<std::string> prompts;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (strip(line).empty()) continue;
    if (!jsonl) {
      prompts.push_back(strip(line));
      continue;
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw InputError(fmt::format("{}:{}: not a JSON object ({})", file.string(), number, e.what()));
    }
    const char* key = j.contains("prompt") ? "prompt" : "text";
    if (!j.is_object() || !j.contains(key) || !j[key].is_string())
      throw InputError(fmt::format("{}:{}: expected {{\"prompt\": str}}", file.string(), number));
    prompts.push_back(j[key].get<std::string>());
  }
  if (prompts.empty()) throw InputError(fmt::format("{}: no prompts", file.string()));
  return prompts;
}

std::vector<McItem> build_next_sentence_task(const std::filesystem::path& text_file, const NextSentenceOptions& o) {
  if (o.items < 1 || o.choices < 2 || o.context_sentences < 1 || o.min_words < 1 || o.max_words < o.min_words)
    throw InputError(fmt::format("next-sentence task: need items >= 1, choices >= 2, context_sentences >= 1 and "
                                 "1 <= min_words <= max_words (got {}, {}, {}, {}, {})",
                                 o.items, o.choices, o.context_sentences, o.min_words, o.max_words));
  std::ifstream in = open_text(text_file, "the text file");
  // Paragraphs as lists of sentences.
  std::vector<std::vector<std::string>> paragraphs;
  std::string line;
  while (std::getline(in, line)) {
    const std::string text = strip(line);
    if (text.empty() || is_heading(text)) continue;
    std::vector<std::string> sentences;
    size_t at = 0;
    while (at < text.size()) {
      size_t end = text.find(" . ", at);
      std::string s = strip(text.substr(at, end == std::string::npos ? std::string::npos : end - at));
      if (!s.empty()) {
        if (end != std::string::npos || s.back() != '.') s += " .";
        sentences.push_back(s);
      }
      if (end == std::string::npos) break;
      at = end + 3;
    }
    paragraphs.push_back(std::move(sentences));
  }
  auto usable = [&](const std::string& s) {
    const int64_t w = word_count(s);
    return w >= o.min_words && w <= o.max_words;
  };
  // Candidate passages: (paragraph, index of the sentence to guess); pool of distractors.
  std::vector<std::pair<size_t, size_t>> candidates;
  std::vector<std::pair<size_t, size_t>> pool;
  for (size_t p = 0; p < paragraphs.size(); ++p)
    for (size_t s = 0; s < paragraphs[p].size(); ++s) {
      if (!usable(paragraphs[p][s])) continue;
      pool.emplace_back(p, s);
      if (s >= static_cast<size_t>(o.context_sentences)) candidates.emplace_back(p, s);
    }
  if (static_cast<int64_t>(candidates.size()) < o.items || static_cast<int64_t>(pool.size()) < 4 * o.choices)
    throw InputError(fmt::format("{}: too few usable sentences for {} next-sentence items ({} passages, {} sentences)",
                                 text_file.string(), o.items, candidates.size(), pool.size()));
  SplitMix rng{o.seed};
  std::vector<McItem> items;
  for (int64_t i = 0; i < o.items; ++i) {
    const auto [p, s] = candidates[static_cast<size_t>(i) * candidates.size() / static_cast<size_t>(o.items)];
    McItem item;
    for (size_t k = s - static_cast<size_t>(o.context_sentences); k < s; ++k)
      item.context += (item.context.empty() ? "" : " ") + paragraphs[p][k];
    const std::string truth = paragraphs[p][s];
    std::vector<std::string> distractors;
    while (static_cast<int64_t>(distractors.size()) < o.choices - 1) {
      const auto [dp, ds] = pool[rng.below(pool.size())];
      const std::string& d = paragraphs[dp][ds];
      if (dp == p || d == truth || std::find(distractors.begin(), distractors.end(), d) != distractors.end()) continue;
      distractors.push_back(d);
    }
    item.answer = static_cast<int32_t>(rng.below(static_cast<uint64_t>(o.choices)));
    size_t next_distractor = 0;
    for (int64_t c = 0; c < o.choices; ++c)
      item.choices.push_back(c == item.answer ? truth : distractors[next_distractor++]);
    items.push_back(std::move(item));
  }
  return items;
}

std::vector<std::vector<int32_t>> prompts_from_text(const Tokenizer& tokenizer, const std::filesystem::path& text_file,
                                                    int64_t count, int64_t tokens) {
  if (count < 1 || tokens < 1)
    throw InputError(fmt::format("prompts from text: count and tokens must be positive (got {}, {})", count, tokens));
  std::ifstream in = open_text(text_file, "the text file");
  // A line of at least `tokens` words encodes to at least `tokens` tokens: select by words, encode only the
  // chosen lines.
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    const std::string text = strip(line);
    if (text.empty() || is_heading(text) || word_count(text) < tokens) continue;
    lines.push_back(text);
  }
  if (static_cast<int64_t>(lines.size()) < count)
    throw InputError(fmt::format("{}: only {} lines have {} words, {} prompts asked", text_file.string(), lines.size(),
                                 tokens, count));
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int32_t> ids = tokenizer.encode(lines[static_cast<size_t>(i) * lines.size() / static_cast<size_t>(count)]);
    ids.resize(static_cast<size_t>(tokens));
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<int32_t> tokenize_corpus_prefix(const Tokenizer& tokenizer, const std::filesystem::path& text_file,
                                            int64_t max_tokens) {
  std::ifstream in = open_text(text_file, "the text file");
  std::vector<int32_t> stream;
  std::string line;
  while ((max_tokens <= 0 || static_cast<int64_t>(stream.size()) < max_tokens) && std::getline(in, line)) {
    const std::string text = strip(line);
    if (text.empty()) continue;
    const std::vector<int32_t> ids = tokenizer.encode(text);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(13);  // metrics/corpus.hpp: kNewlineToken
  }
  if (stream.empty()) throw InputError(fmt::format("{}: no text to score (every line is blank)", text_file.string()));
  return stream;
}

int64_t EvalSet::tokens() const {
  int64_t n = 0;
  for (const auto& c : chunks) n += static_cast<int64_t>(c.size());
  return n;
}

int64_t EvalSet::kept_tokens() const { return chunk_offset(kept_chunks); }

int64_t EvalSet::chunk_offset(int64_t chunk) const {
  int64_t n = 0;
  for (int64_t c = 0; c < chunk; ++c) n += static_cast<int64_t>(chunks[static_cast<size_t>(c)].size());
  return n;
}

int64_t EvalSet::mc_choice_count() const {
  int64_t n = 0;
  for (const auto& c : mc_choices) n += static_cast<int64_t>(c.size());
  return n;
}

int64_t EvalSet::longest_sequence() const {
  size_t longest = 0;
  for (const auto& c : chunks) longest = std::max(longest, c.size());
  for (const auto& p : prompts) longest = std::max(longest, p.size() + static_cast<size_t>(continuation));
  for (size_t i = 0; i < mc_context.size(); ++i)
    for (const auto& c : mc_choices[i]) longest = std::max(longest, mc_context[i].size() + c.size());
  return static_cast<int64_t>(longest) + 1;
}

namespace {
void put_ragged(ByteWriter& w, const std::vector<std::vector<int32_t>>& rows) {
  w.put<int64_t>(static_cast<int64_t>(rows.size()));
  for (const auto& r : rows) w.put_vector(r);
}
std::vector<std::vector<int32_t>> get_ragged(ByteReader& r) {
  std::vector<std::vector<int32_t>> rows(static_cast<size_t>(r.get<int64_t>()));
  for (auto& row : rows) row = r.get_vector<int32_t>();
  return rows;
}
void put_strings(ByteWriter& w, const std::vector<std::string>& s) {
  w.put<int64_t>(static_cast<int64_t>(s.size()));
  for (const auto& x : s) w.put_string(x);
}
std::vector<std::string> get_strings(ByteReader& r) {
  std::vector<std::string> s(static_cast<size_t>(r.get<int64_t>()));
  for (auto& x : s) x = r.get_string();
  return s;
}
}  // namespace

Bytes serialize(const EvalSet& set) {
  ByteWriter w;
  w.put(set.ctx);
  put_ragged(w, set.chunks);
  w.put(set.kept_chunks);
  put_ragged(w, set.prompts);
  put_strings(w, set.prompt_text);
  w.put(set.continuation);
  put_ragged(w, set.mc_context);
  w.put<int64_t>(static_cast<int64_t>(set.mc_choices.size()));
  for (const auto& c : set.mc_choices) put_ragged(w, c);
  w.put_vector(set.mc_answer);
  put_strings(w, set.mc_context_text);
  w.put<int64_t>(static_cast<int64_t>(set.mc_choice_text.size()));
  for (const auto& c : set.mc_choice_text) put_strings(w, c);
  return w.take();
}

EvalSet deserialize_eval_set(const Bytes& bytes) {
  ByteReader r(bytes);
  EvalSet set;
  set.ctx = r.get<int64_t>();
  set.chunks = get_ragged(r);
  set.kept_chunks = r.get<int64_t>();
  set.prompts = get_ragged(r);
  set.prompt_text = get_strings(r);
  set.continuation = r.get<int64_t>();
  set.mc_context = get_ragged(r);
  set.mc_choices.resize(static_cast<size_t>(r.get<int64_t>()));
  for (auto& c : set.mc_choices) c = get_ragged(r);
  set.mc_answer = r.get_vector<int32_t>();
  set.mc_context_text = get_strings(r);
  set.mc_choice_text.resize(static_cast<size_t>(r.get<int64_t>()));
  for (auto& c : set.mc_choice_text) c = get_strings(r);
  EXPECTS(r.done(), "EvalSet payload has trailing bytes");
  return set;
}

std::string EvalSet::hash() const {
  Sha256 h;
  auto ragged = [&](const std::vector<std::vector<int32_t>>& rows) {
    const int64_t n = static_cast<int64_t>(rows.size());
    h.update(&n, sizeof(n));
    for (const auto& row : rows) {
      const int64_t len = static_cast<int64_t>(row.size());
      h.update(&len, sizeof(len));
      h.update(row.data(), row.size() * sizeof(int32_t));
    }
  };
  h.update(&ctx, sizeof(ctx));
  ragged(chunks);
  h.update(&kept_chunks, sizeof(kept_chunks));
  ragged(prompts);
  h.update(&continuation, sizeof(continuation));
  ragged(mc_context);
  for (const auto& c : mc_choices) ragged(c);
  h.update(mc_answer.data(), mc_answer.size() * sizeof(int32_t));
  return h.hex_digest();
}

}  // namespace divprune

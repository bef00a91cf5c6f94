#include "metrics/cloze_task.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "metrics/corpus.hpp"

namespace divprune {

namespace {

// splitmix64 (the next-sentence builder's PRNG, written again to keep this file standalone).
struct Rng {
  uint64_t state;
  uint64_t below(uint64_t n) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) % n;
  }
};

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool answer_word(const std::string& w) {
  return w.size() >= 3 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

std::string join(const std::vector<std::string>& words, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += (i ? " " : "") + words[i];
  return out;
}

}  // namespace

std::vector<McItem> build_cloze_task(const std::filesystem::path& text_file, const NextSentenceOptions& o) {
  if (o.items < 1 || o.choices < 2 || o.context_sentences < 1 || o.min_words < 2 || o.max_words < o.min_words)
    throw InputError(fmt::format("cloze task: need items >= 1, choices >= 2, context_sentences >= 1 and "
                                 "2 <= min_words <= max_words (got {}, {}, {}, {}, {})",
                                 o.items, o.choices, o.context_sentences, o.min_words, o.max_words));
  require_regular_file(text_file, "the cloze text file");
  std::ifstream in(text_file);
  if (!in) throw InputError(fmt::format("{}: cannot open the cloze text file", text_file.string()));
  // Paragraphs as lists of sentences (without the final "."), and the answer-word counts of the whole text.
  std::vector<std::vector<std::string>> paragraphs;
  std::map<std::string, int64_t> counts;
  for (std::string line; std::getline(in, line);) {
    const std::string text = strip(line);
    if (text.empty() || (text.size() >= 2 && text.front() == '=' && text.back() == '=')) continue;
    std::vector<std::string> sentences;
    size_t at = 0;
    while (at < text.size()) {
      const size_t end = text.find(" . ", at);
      std::string s = strip(text.substr(at, end == std::string::npos ? std::string::npos : end - at));
      if (end == std::string::npos && s.size() >= 2 && s.substr(s.size() - 2) == " .") s = strip(s.substr(0, s.size() - 2));
      if (!s.empty()) sentences.push_back(s);
      if (end == std::string::npos) break;
      at = end + 3;
    }
    for (const std::string& s : sentences)
      for (const std::string& w : words_of(s))
        if (answer_word(w)) ++counts[w];
    paragraphs.push_back(std::move(sentences));
  }
  // Answer words by count (ties by the word: deterministic), and each word's rank.
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& [w, n] : counts) ranked.emplace_back(-n, w);
  std::sort(ranked.begin(), ranked.end());
  std::map<std::string, int64_t> rank;
  for (size_t r = 0; r < ranked.size(); ++r) rank[ranked[r].second] = static_cast<int64_t>(r);
  if (static_cast<int64_t>(ranked.size()) < 2 * kClozeFrequencyWindow + 1)
    throw InputError(fmt::format("{}: too few distinct answer words ({}) for a cloze task", text_file.string(),
                                 ranked.size()));

  std::vector<std::pair<size_t, size_t>> candidates;  // (paragraph, sentence)
  for (size_t p = 0; p < paragraphs.size(); ++p)
    for (size_t s = 0; s < paragraphs[p].size(); ++s) {
      const std::vector<std::string> w = words_of(paragraphs[p][s]);
      if (static_cast<int64_t>(w.size()) >= o.min_words && static_cast<int64_t>(w.size()) <= o.max_words &&
          answer_word(w.back()))
        candidates.emplace_back(p, s);
    }
  if (static_cast<int64_t>(candidates.size()) < o.items)
    throw InputError(fmt::format("{}: too few candidate sentences for {} cloze items ({})", text_file.string(), o.items,
                                 candidates.size()));

  Rng rng{o.seed};
  std::vector<McItem> items;
  for (int64_t i = 0; i < o.items; ++i) {
    const auto [p, s] = candidates[static_cast<size_t>(i) * candidates.size() / static_cast<size_t>(o.items)];
    const std::vector<std::string> words = words_of(paragraphs[p][s]);
    const std::string truth = words.back();
    McItem item;
    const size_t first = s >= static_cast<size_t>(o.context_sentences - 1) ? s - static_cast<size_t>(o.context_sentences - 1) : 0;
    for (size_t k = first; k < s; ++k) item.context += paragraphs[p][k] + " . ";
    item.context += join(words, words.size() - 1);
    const std::set<std::string> context_words = [&] {
      const std::vector<std::string> w = words_of(item.context);
      return std::set<std::string>(w.begin(), w.end());
    }();
    // Distractors from the frequency window around the true word (shifted inward at the ends of the ranking).
    const int64_t n = static_cast<int64_t>(ranked.size()), r = rank.at(truth);
    const int64_t lo = std::clamp<int64_t>(r - kClozeFrequencyWindow, 0, n - 1 - 2 * kClozeFrequencyWindow);
    std::vector<std::string> distractors;
    for (int attempt = 0; static_cast<int64_t>(distractors.size()) < o.choices - 1; ++attempt) {
      if (attempt > 1000)
        throw InputError(fmt::format("{}: cannot find {} cloze distractors near \"{}\"", text_file.string(),
                                     o.choices - 1, truth));
      const std::string& d = ranked[static_cast<size_t>(lo + static_cast<int64_t>(rng.below(2 * kClozeFrequencyWindow + 1)))].second;
      if (d == truth || context_words.count(d) || std::find(distractors.begin(), distractors.end(), d) != distractors.end())
        continue;
      distractors.push_back(d);
    }
    item.answer = static_cast<int32_t>(rng.below(static_cast<uint64_t>(o.choices)));
    size_t next = 0;
    for (int64_t c = 0; c < o.choices; ++c) item.choices.push_back(c == item.answer ? truth : distractors[next++]);
    items.push_back(std::move(item));
  }
  return items;
}

}  // namespace divprune

#pragma once
// The archive of the shared whole-corpus reference run (tests/wikitext/CMakeLists.txt): where it is and what the
// tests that need whole-WikiText-2 numbers read from it. The tests using it require the CTest fixture
// `wikitext_archive` (set up by the wikitext_run test), so ctest runs that test first even when asked for one test.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "archive/archive.hpp"
#include "archive/h5.hpp"
#include "tests/support/assets.hpp"

namespace divprune::test {

// The WikiText-2 test set under the README protocol: 1303 chunks of 256 tokens, 333,547 scored tokens.
inline constexpr long kWikitextTokens = 333547;
inline constexpr long kWikitextChunks = 1303;

inline std::filesystem::path wikitext_archive() { return DIVPRUNE_WIKITEXT_ARCHIVE; }

// Fails the calling test (ASSERT) when the fixture left no archive: wikitext_run failed or was not run.
#define WIKITEXT_ARCHIVE_OR_FAIL()                                                                      \
  ASSERT_TRUE(std::filesystem::exists(::divprune::test::wikitext_archive()))                          \
      << ::divprune::test::wikitext_archive() << " is missing: the fixture test wikitext_run failed or did not run"

// Plan summaries of the archive by plan name (file stem for plan files).
inline std::map<std::string, Summary> wikitext_plan_summaries() {
  const RunArchive a(wikitext_archive());
  H5File f(wikitext_archive(), H5Mode::Read);
  std::map<std::string, Summary> out;
  for (const std::string& id : f.children("plans"))
    if (f.is_group("plans/" + id)) out[f.attr_string("plans/" + id, "name")] = a.read_plan_summary(id);
  return out;
}

// Perplexity of the base model over the first `tokens` scored tokens of the corpus, from the baseline's per-token
// NLL. A prefix of the corpus's lines is a prefix of its token stream, cut into the same chunks (the last one
// shorter), and a token's NLL depends only on the tokens before it in its chunk: scoring the first lines of the
// text gives these tokens and this perplexity.
inline double wikitext_prefix_perplexity(long tokens) {
  const std::vector<double> nll = RunArchive(wikitext_archive()).read_base_outputs().nll;
  EXPECT_LE(tokens, static_cast<long>(nll.size()));
  double sum = 0;
  for (long i = 0; i < tokens && i < static_cast<long>(nll.size()); ++i) sum += nll[static_cast<size_t>(i)];
  return std::exp(sum / static_cast<double>(tokens));
}

// Writes the first `lines` lines of WikiText-2 test to `file`: a text whose scored tokens are the first tokens of
// the corpus (see wikitext_prefix_perplexity).
inline void write_wikitext_prefix(const std::filesystem::path& file, int lines) {
  std::ifstream in(assets_dir() / "wikitext2.test.txt");
  std::ofstream out(file);
  std::string line;
  for (int i = 0; i < lines && std::getline(in, line); ++i) out << line << "\n";
}

}  // namespace divprune::test

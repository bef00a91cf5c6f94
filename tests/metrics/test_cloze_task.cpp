// The cloze builder (metrics/cloze_task.hpp): every item's answer is the true last word of a sentence whose
// other words form the context, distractors are distinct answer words of similar corpus frequency absent from the
// context, the build is deterministic, and too small a text is refused. On WikiText-2 valid, no model needed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "core/errors.hpp"
#include "metrics/cloze_task.hpp"
#include "pipelines/run_config.hpp"
#include "tests/support/assets.hpp"

namespace divprune {
namespace {

std::vector<std::string> words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST(ClozeTask, AnswersAreLastWordsAndDistractorsMatchTheirFrequency) {
  ASSETS_OR_SKIP("wikitext2.valid.txt");
  const auto text = test::assets_dir() / "wikitext2.valid.txt";
  NextSentenceOptions o;
  o.items = 200;
  o.choices = 4;
  const std::vector<McItem> items = build_cloze_task(text, o);
  ASSERT_EQ(items.size(), 200u);
  // Answer-word counts of the text, as the builder defines them (lower-case alphabetic, >= 3 letters).
  std::map<std::string, int64_t> counts;
  {
    std::ifstream in(text);
    for (std::string line; std::getline(in, line);)
      if (line.find(" = ") != 0)  // headings
        for (const std::string& w : words(line))
          if (w.size() >= 3 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; })) ++counts[w];
  }
  std::string whole;
  {
    std::ifstream in(text);
    whole.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::set<int32_t> positions;
  double log_ratio = 0.0;
  for (const McItem& item : items) {
    ASSERT_EQ(item.choices.size(), 4u);
    const std::string& truth = item.choices[static_cast<size_t>(item.answer)];
    positions.insert(item.answer);
    const std::vector<std::string> cw = words(item.context);
    const std::set<std::string> context(cw.begin(), cw.end());
    // The context's last words followed by the answer are in the text (the end of a sentence).
    ASSERT_GE(cw.size(), 1u);
    std::string tail;
    for (size_t k = cw.size() >= 3 ? cw.size() - 3 : 0; k < cw.size(); ++k) tail += cw[k] + " ";
    EXPECT_NE(whole.find(tail + truth), std::string::npos) << tail << truth;
    EXPECT_EQ(std::set<std::string>(item.choices.begin(), item.choices.end()).size(), 4u) << item.context;
    for (const std::string& c : item.choices) {
      ASSERT_TRUE(counts.count(c)) << c;
      if (c == truth) continue;
      EXPECT_FALSE(context.count(c)) << c << " in " << item.context;
      log_ratio += std::fabs(std::log(static_cast<double>(counts[c]) / static_cast<double>(counts[truth])));
    }
  }
  log_ratio /= 600.0;
  std::printf("mean |log(count ratio)| of a distractor to its answer: %.3f\n", log_ratio);
  std::printf("e.g. \"%s\" -> [%s | %s | %s | %s] answer %d\n", items[7].context.c_str(), items[7].choices[0].c_str(),
              items[7].choices[1].c_str(), items[7].choices[2].c_str(), items[7].choices[3].c_str(), items[7].answer);
  EXPECT_LT(log_ratio, 0.7);  // similar frequency: within a factor of 2 on average
  EXPECT_EQ(positions.size(), 4u);
  // Deterministic; another seed draws other distractors.
  const std::vector<McItem> again = build_cloze_task(text, o);
  EXPECT_EQ(again[42].choices, items[42].choices);
  o.seed = 2;
  const std::vector<McItem> other = build_cloze_task(text, o);
  EXPECT_EQ(other[42].context, items[42].context);
  size_t differ = 0;
  for (size_t i = 0; i < items.size(); ++i) differ += other[i].choices != items[i].choices;
  EXPECT_GT(differ, 100u);
}

TEST(ClozeTask, TooSmallATextIsRefused) {
  const auto dir = std::filesystem::temp_directory_path() / ("cloze-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "small.txt") << "The cat sat on the mat in the garden .\n";
  NextSentenceOptions o;
  EXPECT_THROW(build_cloze_task(dir / "small.txt", o), InputError);
  std::filesystem::remove_all(dir);
}

// build.kind other than next_sentence / cloze: an InputError naming the key (exit 2 from `divprune run`).
TEST(ClozeTask, UnknownBuildKindIsRefused) {
  const std::string text = "model: m\narchive: /tmp/x.h5\nstages: [baseline]\n"
                           "data:\n  multiple_choice:\n    build: {kind: riddle, text: t.txt}\n";
  try {
    parse_run_config(text, "/tmp/run.yaml", {});
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("data.multiple_choice.build.kind"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected next_sentence or cloze, found \"riddle\""), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace divprune

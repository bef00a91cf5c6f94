// The divprune binary end to end: help texts, the embedded demo (and its determinism), and the commands on
// the shared assets compared with the same references as the library tests.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <sstream>

#include "archive/h5.hpp"
#include "metrics/corpus.hpp"
#include "metrics/perplexity.hpp"
#include "model/tokenizer.hpp"
#include "tests/cli/cli_util.hpp"

namespace divprune::test {
namespace {

TEST(CliHelp, TopLevelHelpListsSubcommands) {
  const CommandResult r = run_cli("--help");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* sub : {"info", "generate", "logits", "perplexity", "demo"})
    EXPECT_NE(r.out.find(sub), std::string::npos) << "help does not mention " << sub << "\n" << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;
}

TEST(CliHelp, VersionFlag) {
  const CommandResult r = run_cli("--version");
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find(DIVPRUNE_VERSION), std::string::npos) << r.out;
}

TEST(CliHelp, EverySubcommandHelpMentionsItsOptions) {
  const std::vector<std::string> execution = {"--tp", "--backend", "--threads", "--verbose", "--quiet"};
  const std::map<std::string, std::vector<std::string>> options = {
      {"info", {"--model"}},
      {"generate", {"--model", "--tokenizer", "--prompt", "--prompt-ids", "--tokens"}},
      {"logits", {"--model", "--input", "--out"}},
      {"perplexity", {"--model", "--tokenizer", "--text", "--ctx"}},
      {"demo", {"--out-dir", "--seed", "--sequences", "--length"}},
  };
  for (const auto& [sub, expected] : options) {
    const CommandResult r = run_cli(sub + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << "\n" << describe(r);
    for (const auto& option : expected)
      EXPECT_NE(r.out.find(option), std::string::npos) << sub << " --help lacks " << option << "\n" << r.out;
    if (sub != "info") {
      for (const auto& option : execution)
        EXPECT_NE(r.out.find(option), std::string::npos) << sub << " --help lacks " << option << "\n" << r.out;
    }
  }
}

TEST(CliHelp, UsageErrorsExitTwoWithOneLine) {
  for (const std::string args : {"", "frobnicate", "info", "info --model", "demo --no-such-option",
                                 "generate --model x --tp zero"}) {
    const CommandResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 2) << "args: " << args << "\n" << describe(r);
    const auto lines = split_lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << "args: " << args << "\n" << describe(r);
    EXPECT_EQ(lines[0].rfind("divprune: error: ", 0), 0u) << lines[0];
  }
}

TEST(CliDemo, RunsAndEndsWithPerplexityLine) {
  TempDir tmp;
  const CommandResult r = run_cli("demo --out-dir " + quote(tmp / "model"));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const PplLine ppl = parse_ppl_line(last_line(r.out));
  ASSERT_TRUE(ppl.ok) << "last line: " << last_line(r.out);
  EXPECT_EQ(ppl.tokens, 1024);
  EXPECT_GT(ppl.ppl, 1.0);
  EXPECT_LT(ppl.ppl, 512.0);  // better than uniform over the 512-token vocabulary: sampled from the model itself
  EXPECT_TRUE(fs::exists(tmp / "model" / "config.json"));
  EXPECT_TRUE(fs::exists(tmp / "model" / "model.safetensors"));
  report_measured("demo perplexity (seed 1234, 8 x 128 sampled tokens)", fmt::format("{:.4f}", ppl.ppl));
}

// stdout with the output directory replaced by a placeholder (the wall time goes to stderr).
std::string stable_output(const std::string& out, const fs::path& dir) {
  std::string text;
  for (std::string line : split_lines(out)) {
    for (size_t at; (at = line.find(dir.string())) != std::string::npos;) line.replace(at, dir.string().size(), "<dir>");
    text += line + "\n";
  }
  return text;
}

TEST(CliDemo, IsDeterministic) {
  TempDir tmp;
  const CommandResult a = run_cli("demo -q --out-dir " + quote(tmp / "a"));
  const CommandResult b = run_cli("demo -q --out-dir " + quote(tmp / "b"));
  ASSERT_EQ(a.exit_code, 0) << describe(a);
  ASSERT_EQ(b.exit_code, 0) << describe(b);
  EXPECT_EQ(stable_output(a.out, tmp / "a"), stable_output(b.out, tmp / "b"));
  EXPECT_EQ(read_file(tmp / "a" / "model.safetensors"), read_file(tmp / "b" / "model.safetensors"));
  EXPECT_EQ(read_file(tmp / "a" / "config.json"), read_file(tmp / "b" / "config.json"));
  // Run again into an existing directory: same output.
  const CommandResult c = run_cli("demo -q --out-dir " + quote(tmp / "a"));
  ASSERT_EQ(c.exit_code, 0) << describe(c);
  EXPECT_EQ(stable_output(a.out, tmp / "a"), stable_output(c.out, tmp / "a"));
  // Another seed gives another model.
  const CommandResult d = run_cli("demo -q --seed 7 --out-dir " + quote(tmp / "d"));
  ASSERT_EQ(d.exit_code, 0) << describe(d);
  EXPECT_NE(read_file(tmp / "a" / "model.safetensors"), read_file(tmp / "d" / "model.safetensors"));
}

TEST(CliInfo, DescribesBothCheckpointFormats) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("stories260K.bin");
  const CommandResult hf = run_cli("info --model " + quote(assets_dir() / "tiny-llama2-trained"));
  ASSERT_EQ(hf.exit_code, 0) << describe(hf);
  for (const char* expected : {"format             safetensors", "dtype              float16", "layers             6",
                               "hidden_size        256", "8 heads, 8 kv heads (MHA), head_dim 32",
                               "vocab_size         32000", "model-00003-of-00003.safetensors"})
    EXPECT_NE(hf.out.find(expected), std::string::npos) << expected << "\n" << hf.out;
  // Shards by name, whatever order the index's weight_map lists them in.
  const size_t s1 = hf.out.find("model-00001-of-00003"), s2 = hf.out.find("model-00002-of-00003"),
               s3 = hf.out.find("model-00003-of-00003");
  EXPECT_TRUE(s1 != std::string::npos && s1 < s2 && s2 < s3) << hf.out;
  const CommandResult bin = run_cli("info --model " + quote(assets_dir() / "stories260K.bin"));
  ASSERT_EQ(bin.exit_code, 0) << describe(bin);
  for (const char* expected : {"format             llama2.c", "layers             5", "8 heads, 4 kv heads (GQA)",
                               "vocab_size         512", "tied embeddings    yes"})
    EXPECT_NE(bin.out.find(expected), std::string::npos) << expected << "\n" << bin.out;
}

TEST(CliGenerate, StoriesGreedyFromBos) {
  ASSETS_OR_SKIP("stories260K.bin");
  ASSETS_OR_SKIP("stories260K.greedy128.txt");
  const CommandResult r = run_cli("generate -q --model " + quote(assets_dir() / "stories260K.bin") +
                                       " --prompt-ids 1 -n 128");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  std::vector<int32_t> got;
  std::stringstream in(split_lines(r.out).at(0));
  for (int32_t id; in >> id;) got.push_back(id);
  EXPECT_EQ(got, read_ids(assets_dir() / "stories260K.greedy128.txt"));
}

TEST(CliGenerate, MhaGreedyWithTokenizer) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  H5File reference(assets_dir() / "tiny-llama2-mha/reference.h5", H5Mode::Read);
  const std::vector<int32_t> prompt = reference.read_int32("greedy_prompt");
  const std::vector<int32_t> expected = reference.read_int32("greedy_ids");
  const CommandResult r = run_cli(fmt::format("generate -q --model {} --tokenizer {} --prompt-ids {} -n {}",
                                                   quote(assets_dir() / "tiny-llama2-mha"),
                                                   quote(assets_dir() / "llama2-tokenizer.model"),
                                                   fmt::join(prompt, ","), expected.size()));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto lines = split_lines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;  // ids, then the decoded text
  EXPECT_EQ(lines[0], fmt::format("{}", fmt::join(expected, " ")));
  Tokenizer tokenizer(assets_dir() / "llama2-tokenizer.model");
  EXPECT_EQ(r.out.substr(lines[0].size() + 1), tokenizer.decode(expected) + "\n");
}

TEST(CliLogits, MatchTransformersReference) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  TempDir tmp;
  const fs::path reference_file = assets_dir() / "tiny-llama2-mha/reference.h5";
  const CommandResult r = run_cli("logits -q --model " + quote(assets_dir() / "tiny-llama2-mha") + " --input " +
                                       quote(reference_file) + " --out " + quote(tmp / "logits.h5"));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  Shape got_dims, ref_dims;
  const std::vector<float> got = H5File(tmp / "logits.h5", H5Mode::Read).read_float("logits", &got_dims);
  const std::vector<float> ref = H5File(reference_file, H5Mode::Read).read_float("logits", &ref_dims);
  ASSERT_EQ(got_dims, ref_dims);
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::abs(got[i] - ref[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::abs(ref[i])));
  }
  EXPECT_LE(max_diff / max_ref, 1e-4);
}

// The first `lines` non-blank lines of WikiText-2 test, as a small corpus.
fs::path small_corpus(const TempDir& tmp, size_t lines) {
  std::ifstream in(assets_dir() / "wikitext2.test.txt");
  std::string text, line;
  for (size_t kept = 0; kept < lines && std::getline(in, line);) {
    text += line + "\n";
    if (line.find_first_not_of(" \t\r") != std::string::npos) ++kept;
  }
  write_file(tmp / "small.txt", text);
  return tmp / "small.txt";
}

TEST(CliPerplexity, SmallCorpusMatchesTheLibrary) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("wikitext2.test.txt");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  const fs::path text = small_corpus(tmp, 40);
  const fs::path model_dir = assets_dir() / "tiny-llama2-trained";
  const fs::path tokenizer_file = assets_dir() / "llama2-tokenizer.model";
  const CommandResult r = run_cli("perplexity -q --model " + quote(model_dir) + " --tokenizer " +
                                       quote(tokenizer_file) + " --text " + quote(text) + " --ctx 128");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const PplLine cli = parse_ppl_line(last_line(r.out));
  ASSERT_TRUE(cli.ok) << r.out;

  Tokenizer tokenizer(tokenizer_file);
  const auto chunks = chunk_stream(tokenize_corpus(tokenizer, text), 128);
  std::vector<size_t> all(chunks.size());
  std::iota(all.begin(), all.end(), size_t{0});
  auto model = load_model(model_dir);
  const NllSum lib = score_chunks(*model->model, chunks, all, 1);
  EXPECT_EQ(cli.tokens, lib.tokens);
  EXPECT_NEAR(cli.ppl, lib.perplexity(), 1e-4 + 1e-6 * lib.perplexity());
  EXPECT_GT(lib.tokens, 1000);
  EXPECT_LT(lib.perplexity(), 1000.0);  // a trained model: far better than uniform over 32000 pieces
}

}  // namespace
}  // namespace divprune::test

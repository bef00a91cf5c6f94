// Evaluation data files (multiple-choice JSONL, prompts), the next-sentence task built from WikiText, the
// run configuration (overrides, paths, plans) and the archive's C++ round trip on hand-made values.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "archive/archive.hpp"
#include "archive/h5.hpp"
#include "core/errors.hpp"
#include "core/sha256.hpp"
#include "metrics/eval_data.hpp"
#include "pipelines/run_config.hpp"
#include "tests/support/assets.hpp"

namespace divprune {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 ("divprune-metrics-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file);
  out << text;
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(McJsonl, RoundTripAndErrorsNameTheLine) {
  const fs::path dir = temp_dir();
  std::vector<McItem> items = {{"The cat", {"sat .", "flew ."}, 0}, {"Rain \"falls\"", {"up", "down", "sideways"}, 1}};
  write_mc_jsonl(dir / "task.jsonl", items);
  const auto back = read_mc_jsonl(dir / "task.jsonl");
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].context, "Rain \"falls\"");
  EXPECT_EQ(back[1].choices, items[1].choices);
  EXPECT_EQ(back[1].answer, 1);
  write_text(dir / "bad.jsonl", "{\"context\": \"a\", \"choices\": [\"x\", \"y\"], \"answer\": 0}\n\n"
                                "{\"context\": \"b\", \"choices\": [\"x\", \"y\"], \"answer\": 2}\n");
  try {
    read_mc_jsonl(dir / "bad.jsonl");
    FAIL() << "an answer outside the choices was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:3"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Prompts, JsonlAndText) {
  const fs::path dir = temp_dir();
  write_text(dir / "p.jsonl", "{\"prompt\": \"Hello there\"}\n{\"text\": \"Second\"}\n");
  write_text(dir / "p.txt", "  first line \n\nsecond line\n");
  EXPECT_EQ(read_prompts(dir / "p.jsonl"), (std::vector<std::string>{"Hello there", "Second"}));
  EXPECT_EQ(read_prompts(dir / "p.txt"), (std::vector<std::string>{"first line", "second line"}));
  fs::remove_all(dir);
}

TEST(NextSentenceTask, BuiltFromWikiTextIsDeterministicAndWellFormed) {
  ASSETS_OR_SKIP("wikitext2.valid.txt");
  const fs::path text = test::assets_dir() / "wikitext2.valid.txt";
  NextSentenceOptions o;
  o.items = 25;
  o.choices = 4;
  const auto a = build_next_sentence_task(text, o);
  const auto b = build_next_sentence_task(text, o);
  ASSERT_EQ(a.size(), 25u);
  std::set<int32_t> answers;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].context, b[i].context);
    EXPECT_EQ(a[i].choices, b[i].choices);
    EXPECT_EQ(a[i].answer, b[i].answer);
    ASSERT_EQ(a[i].choices.size(), 4u);
    EXPECT_GE(a[i].answer, 0);
    EXPECT_LT(a[i].answer, 4);
    answers.insert(a[i].answer);
    EXPECT_FALSE(a[i].context.empty());
    std::set<std::string> distinct(a[i].choices.begin(), a[i].choices.end());
    EXPECT_EQ(distinct.size(), 4u) << "item " << i;
  }
  EXPECT_GE(answers.size(), 3u) << "answers should be spread over the positions";
  o.seed = 2;
  const auto c = build_next_sentence_task(text, o);
  EXPECT_EQ(c[0].context, a[0].context);  // same passages, other distractors / positions
  bool differs = false;
  for (size_t i = 0; i < c.size(); ++i) differs |= c[i].choices != a[i].choices;
  EXPECT_TRUE(differs);
}

TEST(EvalSet, SerialiseAndHash) {
  EvalSet s;
  s.ctx = 4;
  s.chunks = {{1, 2, 3, 4}, {5, 6}};
  s.kept_chunks = 1;
  s.prompts = {{7, 8}};
  s.prompt_text = {"x"};
  s.continuation = 3;
  s.mc_context = {{9}};
  s.mc_choices = {{{10}, {11, 12}}};
  s.mc_answer = {1};
  s.mc_context_text = {"c"};
  s.mc_choice_text = {{"a", "b"}};
  const EvalSet r = deserialize_eval_set(serialize(s));
  EXPECT_EQ(r.chunks, s.chunks);
  EXPECT_EQ(r.mc_choices, s.mc_choices);
  EXPECT_EQ(r.hash(), s.hash());
  EXPECT_EQ(s.tokens(), 6);
  EXPECT_EQ(s.kept_tokens(), 4);
  EXPECT_EQ(s.mc_choice_count(), 2);
  EXPECT_EQ(s.longest_sequence(), 6);  // BOS + prompt 2 + continuation 3
  EvalSet t = s;
  t.mc_answer = {0};
  EXPECT_NE(t.hash(), s.hash());
}

TEST(RunConfig, OverridesPathsAndPlans) {
  const fs::path dir = temp_dir();
  fs::create_directories(dir / "cfg" / "plans");
  write_text(dir / "cfg" / "plans" / "p.yaml", "drop_layers: [1]\ncomponents: []\n");
  write_text(dir / "cfg" / "run.yaml", R"(assets: ../assets
model: ${assets}/model
tokenizer: /abs/tok.model
archive: out/run.h5
stages: [baseline, evaluate]
data:
  perplexity:
    text: ${assets}/text.txt
    ctx: 64
  logprobs:
    store: topk
    top_k: 8
evaluate:
  plans:
    - base
    - plans/p.yaml
    - name: half
      plan: {components: [{layers: all, names: [q], prune: {method: magnitude, sparsity: 0.5}}]}
)");
  const RunConfig c = load_run_config(dir / "cfg" / "run.yaml",
                                      {"data.perplexity.max_chunks=3", "data.logprobs.max_tokens=-1", "evaluate.plans.0=base",
                                       "data.prompts.text=/x.txt", "stages=[evaluate]"});
  EXPECT_EQ(c.model, (dir / "assets" / "model").lexically_normal());
  EXPECT_EQ(c.tokenizer, fs::path("/abs/tok.model"));
  EXPECT_EQ(c.archive, (dir / "cfg" / "out" / "run.h5").lexically_normal());
  EXPECT_EQ(c.ppl_text, (dir / "assets" / "text.txt").lexically_normal());
  EXPECT_EQ(c.ctx, 64);
  EXPECT_EQ(c.max_chunks, 3);
  EXPECT_EQ(c.max_logprob_tokens, -1);
  EXPECT_EQ(c.logprob_mode, LogprobMode::TopK);
  EXPECT_EQ(c.top_k, 8);
  EXPECT_EQ(c.prompts_text, fs::path("/x.txt"));
  EXPECT_EQ(c.stages, (std::vector<std::string>{"evaluate"}));
  ASSERT_EQ(c.plans.size(), 3u);
  EXPECT_EQ(c.plans[0].name, "base");
  EXPECT_EQ(c.plans[1].name, "p");
  EXPECT_NE(c.plans[1].yaml.find("drop_layers: [1]"), std::string::npos);
  EXPECT_EQ(c.plans[2].name, "half");
  EXPECT_EQ(c.plans[2].source, "inline");
  // The archived YAML carries the overrides.
  EXPECT_NE(c.yaml.find("max_chunks: 3"), std::string::npos) << c.yaml;

  auto error = [&](const std::string& text, const std::vector<std::string>& sets = {}) {
    write_text(dir / "cfg" / "bad.yaml", text);
    try {
      load_run_config(dir / "cfg" / "bad.yaml", sets);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string base = "model: m\narchive: a.h5\nstages: [baseline]\n";
  EXPECT_NE(error(base + "data: {perplexity: {txt: x}}\n").find("unknown key \"txt\""), std::string::npos);
  EXPECT_NE(error(base + "data: {perplexity: {ctx: -3}}\n").find("data.perplexity.ctx"), std::string::npos);
  EXPECT_NE(error(base + "data: {logprobs: {store: half}}\n").find("unknown log-prob storage"), std::string::npos);
  EXPECT_NE(error(base, {"nokey"}).find("expected key=value"), std::string::npos);
  EXPECT_NE(error("model: m\nstages: [baseline]\n").find("`archive` is required"), std::string::npos);
  EXPECT_NE(error(base + "evaluate: {plans: [missing.yaml]}\n").find("missing.yaml"), std::string::npos);
  fs::remove_all(dir);
}

TEST(ArchiveRoundTrip, EvalSetBaselineAndPlanReadBack) {
  const fs::path dir = temp_dir();
  RunArchive archive(dir / "a.h5");
  ArchiveRunInfo info;
  info.config_yaml = "model: x\n";
  info.model_checksum = "sha256:abc";
  info.stages = {"baseline"};
  EXPECT_EQ(archive.begin_run(info), 1);
  EXPECT_EQ(archive.begin_run(info), 2);
  ArchiveRunInfo other = info;
  other.model_checksum = "sha256:def";
  EXPECT_THROW(archive.begin_run(other), InputError);

  EvalSet s;
  s.ctx = 3;
  s.chunks = {{1, 2, 3}, {4, 5}};
  s.kept_chunks = 1;
  s.prompts = {{7, 8}};
  s.prompt_text = {"p"};
  s.continuation = 2;
  s.mc_context = {{9}};
  s.mc_choices = {{{10}, {11, 12}}};
  s.mc_answer = {1};
  s.mc_context_text = {"c"};
  s.mc_choice_text = {{"a", "b"}};
  archive.write_eval_set(s);
  const EvalSet r = archive.read_eval_set();
  EXPECT_EQ(r.chunks, s.chunks);
  EXPECT_EQ(r.prompts, s.prompts);
  EXPECT_EQ(r.mc_choices, s.mc_choices);
  EXPECT_EQ(r.mc_choice_text, s.mc_choice_text);
  EXPECT_EQ(r.hash(), s.hash());

  const int64_t vocab = 6;
  archive.begin_baseline(s, LogprobMode::Full, 0, vocab);
  EXPECT_EQ(archive.complete_baseline_hash(), "");
  BaselineChunk c0;
  c0.nll = {0.5, 1.5, 2.5};
  c0.argmax = {1, 2, 3};
  for (int i = 0; i < 3 * vocab; ++i) c0.logprobs.push_back(float_to_half(-0.25f * static_cast<float>(i)));
  c0.logprob_shift = {-1.0, -2.0, -3.0};
  archive.write_baseline_chunk(s, 0, c0);
  BaselineChunk c1;
  c1.nll = {3.5, 4.5};
  c1.argmax = {4, 5};
  archive.write_baseline_chunk(s, 1, c1);
  archive.write_baseline_prompt(s, 0, {20, 21}, {20, 21});
  archive.write_baseline_mc(s, 0, {-1.0, -2.0});
  BaseOutputs base{{0.5, 1.5, 2.5, 3.5, 4.5}, {1, 2, 3, 4, 5}, {20, 21}, {20, 21}, {-1.0, -2.0}};
  archive.finish_baseline(s, base, 1.0);
  EXPECT_EQ(archive.complete_baseline_hash(), s.hash());
  const BaseOutputs b = archive.read_base_outputs();
  EXPECT_EQ(b.nll, base.nll);
  EXPECT_EQ(b.argmax, base.argmax);
  EXPECT_EQ(b.continuation, base.continuation);
  EXPECT_EQ(b.mc_logprob, base.mc_logprob);
  std::vector<uint16_t> bits;
  archive.read_base_logprobs(1, 2, bits);
  EXPECT_EQ(bits, std::vector<uint16_t>(c0.logprobs.begin() + vocab, c0.logprobs.end()));
  EXPECT_EQ(H5File(archive.path(), H5Mode::Read).read_double("baseline/logprob_shift"), c0.logprob_shift);

  PlanOutputs o{{0.6, 1.5, 2.5, 3.0, 4.5}, {1, 0, 3, 4, 5}, {0.1, 0.2, 0.3}, {20, 0}, {-3.0, -1.0}, 2.0};
  const PlanComparison cmp = compare_to_base(s, base, o);
  PlanRecord rec;
  rec.hash = sha256_hex("plan");
  rec.id = plan_id_from_hash(rec.hash);
  rec.name = "p";
  rec.features = {1, 2, 3};
  archive.write_plan(rec, s, o, cmp);
  EXPECT_EQ(archive.plan_status().at(rec.id), true);
  const auto summary = archive.read_plan_summary(rec.id);
  EXPECT_NEAR(summary.at(SummaryMetric::KlMean), 0.2, 1e-15);
  EXPECT_EQ(summary.at(SummaryMetric::FdtMean), 1.0);
  EXPECT_EQ(summary.at(SummaryMetric::SameTop1Rate), 0.8);
  EXPECT_EQ(summary.at(SummaryMetric::McFlipsSumTotal), 1.0);
  // Every dataset carries units and description.
  H5File f(archive.path(), H5Mode::Read);
  std::vector<std::string> stack = {"/"};
  int datasets = 0;
  while (!stack.empty()) {
    const std::string g = stack.back();
    stack.pop_back();
    for (const std::string& name : f.children(g)) {
      const std::string path = g == "/" ? name : g + "/" + name;
      if (f.is_group(path)) {
        stack.push_back(path);
      } else {
        ++datasets;
        EXPECT_TRUE(f.has_attr(path, "units")) << path;
        EXPECT_TRUE(f.has_attr(path, "description")) << path;
      }
    }
  }
  EXPECT_GT(datasets, 40);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune

// `divprune run` end to end on tiny-llama2-trained with a small evaluation set:
//  - the base plan reproduces the baseline (KL within the fp16 storage bound, same top-1, FDT = N, no flips),
//  - full and top-k storage of base log-probs,
//  - the archive reads back in C++ and with analysis/read_archive.py (plain h5py),
//  - bad configurations fail with one message (also under mpirun).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "metrics/eval_data.hpp"
#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

// The baseline stage scores a text exactly as `divprune perplexity` does (same chunks, tokens and value), on the
// first 120 lines of WikiText-2 test (an equality of two code paths: a short text suffices). The whole corpus is
// checked against the PyTorch reference by the shared reference run (tests/wikitext: cli_perplexity_wikitext2 for
// the baseline, compress_perplexity for the compressed models).
TEST(Run, BaselinePerplexityEqualsTheCli) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  {
    std::ifstream in(assets_dir() / "wikitext2.test.txt");
    std::ofstream out(dir / "text.txt");
    std::string line;
    for (int i = 0; i < 120 && std::getline(in, line); ++i) out << line << "\n";
  }
  std::ofstream(dir / "run.yaml") << "model: " << (assets_dir() / "tiny-llama2-trained").string() << "\n"
                                  << "tokenizer: " << (assets_dir() / "llama2-tokenizer.model").string() << "\n"
                                  << "archive: " << (dir / "run.h5").string() << "\n"
                                  << "stages: [baseline]\n"
                                  << "data:\n  perplexity: {text: " << (dir / "text.txt").string() << ", ctx: 128}\n"
                                  << "  logprobs: {store: none}\n";
  const auto run = run_config(dir / "run.yaml");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const auto cli = run_divprune(" perplexity -q --model " + (assets_dir() / "tiny-llama2-trained").string() +
                                " --tokenizer " + (assets_dir() / "llama2-tokenizer.model").string() + " --text " +
                                (dir / "text.txt").string() + " --ctx 128");
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  double ppl = 0;
  long tokens = 0;
  ASSERT_TRUE(parse_ppl(cli.out, &ppl, &tokens)) << cli.out;
  H5File f(dir / "run.h5", H5Mode::Read);
  EXPECT_GT(tokens, 7000);
  EXPECT_EQ(f.read_double("baseline/summary/tokens")[0], static_cast<double>(tokens));
  EXPECT_NEAR(f.read_double("baseline/summary/perplexity")[0], ppl, 1e-4);  // the CLI prints 4 decimals
  std::printf("baseline and CLI: ppl %.4f over %ld tokens\n", ppl, tokens);
  fs::remove_all(dir);
}

TEST(Run, BasePlanReproducesTheBaselineAndTheArchiveReadsBack) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5";
  const auto r = run_config(write_config(dir, "run.yaml", config(archive, kPlans)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::printf("%s", r.out.c_str());

  RunArchive a(archive);
  const EvalSet set = a.read_eval_set();
  const BaseOutputs base = a.read_base_outputs();
  ASSERT_EQ(set.chunks.size(), 3u);
  ASSERT_EQ(set.kept_tokens(), 64);
  ASSERT_EQ(set.prompts.size(), 3u);
  ASSERT_EQ(set.continuation, 8);
  ASSERT_EQ(set.mc_answer.size(), 3u);
  const auto ids = plan_ids(archive);
  ASSERT_EQ(ids.size(), 4u);
  H5File f(archive, H5Mode::Read);
  const std::string b = "plans/" + ids.at("base");
  EXPECT_EQ(f.attr_int(b, "complete"), 1);

  // KL of the base model against its own stored (fp16) outputs: within the bound of SCHEMA.md.
  const auto kl = f.read_double(b + "/tokens/kl");
  ASSERT_EQ(kl.size(), 64u);
  double mean = 0, worst = 0;
  for (double v : kl) {
    mean += v / static_cast<double>(kl.size());
    worst = std::max(worst, std::abs(v));
    EXPECT_GE(v, -1e-7);
  }
  EXPECT_LE(mean, 1e-6);
  EXPECT_LE(worst, 1e-5);
  std::printf("base vs its stored outputs: KL mean %.3e, max |KL| %.3e over %zu tokens\n", mean, worst, kl.size());
  // Same computation as the baseline: identical argmax and NLL, FDT = N, SDT = 0, no flips.
  EXPECT_EQ(f.read_int32(b + "/tokens/argmax"), base.argmax);
  EXPECT_EQ(f.read_double(b + "/tokens/nll"), base.nll);
  for (int32_t v : f.read_int32(b + "/prompts/fdt")) EXPECT_EQ(v, 8);
  for (double v : f.read_double(b + "/prompts/sdt")) EXPECT_EQ(v, 0.0);
  auto s = a.read_plan_summary(ids.at("base"));
  EXPECT_EQ(s.at(SummaryMetric::SameTop1Rate), 1.0);
  EXPECT_EQ(s.at(SummaryMetric::FdtMean), 8.0);
  EXPECT_EQ(s.at(SummaryMetric::FdtReachNRate), 1.0);
  EXPECT_EQ(s.at(SummaryMetric::SdtMean), 0.0);
  EXPECT_EQ(s.at(SummaryMetric::McFlipsSumTotal), 0.0);
  EXPECT_EQ(s.at(SummaryMetric::McFlipsMeanTotal), 0.0);
  EXPECT_EQ(s.at(SummaryMetric::DpRms), 0.0);
  EXPECT_EQ(s.at(SummaryMetric::PerplexityRatio), 1.0);
  // 50% magnitude pruning diverges (its perplexity on 96 tokens is not reliably higher: see metrics_run_pruning).
  const auto m50 = a.read_plan_summary(ids.at("magnitude50_all"));
  EXPECT_GT(m50.at(SummaryMetric::KlMean), 1e-3);
  EXPECT_NE(m50.at(SummaryMetric::Perplexity), s.at(SummaryMetric::Perplexity));
  EXPECT_LT(m50.at(SummaryMetric::SameTop1Rate), 1.0);

  // Root metadata.
  EXPECT_EQ(f.attr_int("/", "schema_version"), kArchiveSchemaVersion);
  EXPECT_EQ(f.attr_int("/", "world_size"), 1);
  EXPECT_EQ(f.attr_int("/", "tp"), 1);
  EXPECT_EQ(f.attr_string("/", "model_checksum").rfind("sha256:", 0), 0u);
  EXPECT_NE(f.attr_string("/", "config_yaml").find("max_chunks: 3"), std::string::npos);
  EXPECT_NE(f.attr_string("/", "model_config").find("\"num_layers\": 6"), std::string::npos);

  // The Python reader (plain h5py) reads every dataset and recomputes the summaries from the arrays.
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string() +
                              " --check --json");
  ASSERT_EQ(py.exit_code, 0) << py.err << py.out;
  const auto doc = nlohmann::json::parse(py.out);
  EXPECT_TRUE(doc["problems"].empty()) << doc["problems"].dump();
  EXPECT_TRUE(doc["deviations"].empty()) << doc["deviations"].dump();
  EXPECT_EQ(doc["root"]["tp"], 1);
  int datasets = 0;
  {
    std::vector<std::string> stack = {"/"};
    while (!stack.empty()) {
      const std::string g = stack.back();
      stack.pop_back();
      for (const std::string& name : f.children(g)) {
        const std::string path = g == "/" ? name : g + "/" + name;
        if (f.is_group(path)) stack.push_back(path);
        else ++datasets;
      }
    }
  }
  EXPECT_EQ(doc["datasets"].get<int>(), datasets);
  ASSERT_EQ(doc["plans"].size(), 4u);
  for (const auto& p : doc["plans"]) {
    const auto cpp = a.read_plan_summary(p["id"].get<std::string>());
    for (const SummaryMetric m : cpp.metrics()) {
      const std::string key = summary_metric_name(m);
      const double value = cpp[m];
      if (std::isnan(value)) EXPECT_TRUE(p["summary"][key].is_null()) << key;
      else EXPECT_EQ(p["summary"][key].get<double>(), value) << p["name"] << " " << key;
    }
  }
  // The human table.
  const auto table = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + archive.string());
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("magnitude10_all"), std::string::npos) << table.out;
  fs::remove_all(dir);
}

TEST(Run, TopKStorage) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const std::string plans = "    - base\n    - " + kSource + "/configs/plans/magnitude50_all.yaml\n";
  ASSERT_EQ(run_config(write_config(dir, "full.yaml", config(dir / "full.h5", plans, 32, 2, 64, "full", 1))).exit_code, 0);
  const auto r = run_config(write_config(dir, "topk.yaml", config(dir / "topk.h5", plans, 32, 2, 64, "topk", 1)));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  H5File f(dir / "topk.h5", H5Mode::Read);
  EXPECT_EQ(f.dims("baseline/topk_ids"), (Shape{64, 32}));
  EXPECT_FALSE(f.exists("baseline/logprobs"));
  const auto top = plan_ids(dir / "topk.h5"), full = plan_ids(dir / "full.h5");
  H5File g(dir / "full.h5", H5Mode::Read);
  for (double v : f.read_double("plans/" + top.at("base") + "/tokens/kl")) EXPECT_NEAR(v, 0.0, 1e-5);
  // The top-k KL is that of coarse-grained distributions: a lower bound of the full KL, token by token.
  const auto kl_top = f.read_double("plans/" + top.at("magnitude50_all") + "/tokens/kl");
  const auto kl_full = g.read_double("plans/" + full.at("magnitude50_all") + "/tokens/kl");
  ASSERT_EQ(kl_top.size(), kl_full.size());
  double sum_top = 0, sum_full = 0;
  for (size_t t = 0; t < kl_top.size(); ++t) {
    EXPECT_LE(kl_top[t], kl_full[t] + 1e-5) << "token " << t;
    sum_top += kl_top[t];
    sum_full += kl_full[t];
  }
  EXPECT_GT(sum_top, 0.3 * sum_full);  // top-32 keeps most of the divergence
  std::printf("50%% magnitude: mean KL %.4e (full) vs %.4e (top-32, coarse-grained)\n", sum_full / kl_full.size(),
              sum_top / kl_top.size());
  fs::remove_all(dir);
}

TEST(Run, PerplexityOnlyWithoutStoredLogprobs) {
  // No prompts, no multiple choice, no base log-probs: the statistics that need them are NaN / empty, the
  // others are computed, and both readers accept the archive.
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  std::ofstream(dir / "run.yaml") << "assets: " << assets_dir().string() << "\n"
                                  << "model: ${assets}/tiny-llama2-trained\n"
                                  << "tokenizer: ${assets}/llama2-tokenizer.model\n"
                                  << "archive: " << (dir / "run.h5").string() << "\n"
                                  << "stages: [baseline, evaluate]\n"
                                  << "data:\n  perplexity: {text: \"${assets}/wikitext2.test.txt\", ctx: 32, max_chunks: 2}\n"
                                  << "  logprobs: {store: none}\n"
                                  << "evaluate:\n  plans: [base, " << kSource << "/configs/plans/int8_all.yaml]\n";
  const auto r = run_config(dir / "run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ids = plan_ids(dir / "run.h5");
  RunArchive a(dir / "run.h5");
  const auto s = a.read_plan_summary(ids.at("int8_all"));
  EXPECT_EQ(s.at(SummaryMetric::KlTokens), 0.0);
  EXPECT_TRUE(std::isnan(s.at(SummaryMetric::KlMean)));
  EXPECT_TRUE(std::isnan(s.at(SummaryMetric::FdtMean)));
  EXPECT_EQ(s.at(SummaryMetric::Prompts), 0.0);
  EXPECT_EQ(s.at(SummaryMetric::Tokens), 64.0);
  EXPECT_LT(s.at(SummaryMetric::SameTop1Rate), 1.01);
  EXPECT_EQ(a.read_plan_summary(ids.at("base")).at(SummaryMetric::SameTop1Rate), 1.0);
  H5File f(dir / "run.h5", H5Mode::Read);
  EXPECT_EQ(f.attr_string("baseline", "logprob_mode"), "none");
  EXPECT_FALSE(f.exists("baseline/logprobs"));
  EXPECT_EQ(f.dims("baseline/continuation"), (Shape{0, 0}));
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + (dir / "run.h5").string() +
                              " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;
  fs::remove_all(dir);
}

TEST(Run, PromptsAndTaskFromFiles) {
  // A next-sentence task built from WikiText-2 and written as JSONL, and prompts as JSONL, fed through the
  // `file` keys.
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  NextSentenceOptions o;
  o.items = 3;
  o.choices = 2;
  o.max_words = 14;
  const auto items = build_next_sentence_task(assets_dir() / "wikitext2.valid.txt", o);
  write_mc_jsonl(dir / "task.jsonl", items);
  std::ofstream(dir / "prompts.jsonl") << "{\"prompt\": \"The game began development in 2010\"}\n"
                                       << "{\"prompt\": \"Robert Boulter is an English film\"}\n";
  std::ofstream(dir / "run.yaml") << "assets: " << assets_dir().string() << "\n"
                                  << "model: ${assets}/tiny-llama2-trained\n"
                                  << "tokenizer: ${assets}/llama2-tokenizer.model\n"
                                  << "archive: run.h5\n"   // relative to the configuration's directory
                                  << "stages: [baseline, evaluate]\n"
                                  << "data:\n  logprobs: {store: none}\n"
                                  << "  prompts: {file: prompts.jsonl, continuation: 6}\n"
                                  << "  multiple_choice: {file: task.jsonl}\n"
                                  << "evaluate:\n  plans: [base]\n";
  const auto r = run_config(dir / "run.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RunArchive a(dir / "run.h5");
  const EvalSet set = a.read_eval_set();
  EXPECT_TRUE(set.chunks.empty());
  ASSERT_EQ(set.prompts.size(), 2u);
  EXPECT_EQ(set.prompt_text[1], "Robert Boulter is an English film");
  EXPECT_EQ(set.continuation, 6);
  ASSERT_EQ(set.mc_answer.size(), 3u);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_EQ(set.mc_answer[i], items[i].answer);
    EXPECT_EQ(set.mc_context_text[i], items[i].context);
    EXPECT_EQ(set.mc_choice_text[i], items[i].choices);
  }
  const auto s = a.read_plan_summary(plan_ids(dir / "run.h5").at("base"));
  EXPECT_EQ(s.at(SummaryMetric::FdtMean), 6.0);
  EXPECT_EQ(s.at(SummaryMetric::McFlipsSumTotal), 0.0);
  EXPECT_TRUE(std::isnan(s.at(SummaryMetric::Perplexity)));
  fs::remove_all(dir);
}

TEST(Run, BadInputFailsWithOneMessage) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const auto cfg = write_config(dir, "run.yaml", config(dir / "run.h5", kPlans));
  auto r = run_config(cfg, "--set data.perplexity.ctxx=3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown key \"ctxx\""), std::string::npos) << r.err;
  r = run_config(cfg, "--set stages=[baseline,search2]");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown stage \"search2\""), std::string::npos) << r.err;
  r = run_config(cfg, "--set stages=[evaluate]");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("run the baseline stage first"), std::string::npos) << r.err;
  r = run_config(cfg, "--set 'evaluate.plans=[{name: x, plan: {drop_layers: [9]}}]' --set stages=[evaluate]");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("drop_layers"), std::string::npos) << r.err;
  r = run_command(mpirun(2) + divprune_binary() + " run " + cfg.string() + " --set data.perplexity.ctx=600");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("more than the model's context 512"), std::string::npos) << r.err;
  size_t lines = 0;
  for (size_t at = r.err.find("divprune: error:"); at != std::string::npos; at = r.err.find("divprune: error:", at + 1)) ++lines;
  EXPECT_EQ(lines, 1u) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

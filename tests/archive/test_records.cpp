// The /search and /sensitivity records: what a writer writes its reader reads back, and the groups, datasets and
// attributes written are exactly those src/archive/SCHEMA.md documents (both directions).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "archive/h5.hpp"
#include "tests/archive/archive_test_util.hpp"
#include "archive/baselines_archive.hpp"
#include "archive/heal_archive.hpp"
#include "archive/heldout_archive.hpp"
#include "archive/search_archive.hpp"
#include "archive/sensitivity_archive.hpp"
#include "core/errors.hpp"

namespace divprune {
namespace {

namespace fs = std::filesystem;

fs::path temp_archive(const std::string& name) { return test::fresh_temp_archive("archive-records", name); }

SampleRecord sample_record() {
  return SampleRecord{{"a1", "a2", "a3"}, "u0", "a2", "mean_kl", 0.5, 0.05, 7};
}
PredictorRecord predictor_record() {
  PredictorRecord r;
  r.model_json = "{\"learner\": {}}";
  r.r2 = 0.75;
  r.spearman = 0.8;
  r.mae = 0.01;
  r.feature_names = {"f0", "f1"};
  r.feature_gain = {2.5, 0.5};
  r.ids = {"a1", "a2", "a3", "u0"};
  r.measured = {0.1, 0.2, 0.3, 0.4};
  r.held_out_prediction = {0.15, 0.25, 0.2, 0.35};
  r.objective = "mean_kl";
  r.folds = 2;
  r.pairs = 4;
  return r;
}
RoundRecord round_record() { return RoundRecord{{"s1", "s2"}, {0.05, 0.07}, {0.06, 0.09}}; }
ParetoRecord pareto_record() { return ParetoRecord{{"u0", "s1"}, {0.45, 0.52}, {0.4, 0.06}}; }
BestRecord best_record() { return BestRecord{"s1", "search_r0_00", "layers: []\n", 0.06, 0.05, 0.52}; }

// A 2-layer x 2-component x 2-step sweep with int8 and removal tables.
SensitivityRecord sensitivity_record() {
  SensitivityRecord r;
  r.method = "magnitude";
  r.fdt_threshold = 0.5;
  r.continuation = 8;
  r.steps = {0.25, 0.5};
  r.layers = {0, 1};
  r.components = {"q", "down"};
  auto summary = [](double fdt, double kl) {
    Summary s;
    s.set(SummaryMetric::FdtMean, fdt);
    s.set(SummaryMetric::SdtMean, fdt / 10.0);
    s.set(SummaryMetric::KlMean, kl);  // no perplexity: NaN in the tables
    return s;
  };
  std::vector<std::string> ids;
  std::vector<Summary> summaries;
  for (int i = 0; i < 8; ++i) {
    ids.push_back("p" + std::to_string(i));
    summaries.push_back(summary(8.0 - i, 0.01 * i));
  }
  r.sweep = sensitivity_table({2, 2, 2}, ids, summaries);
  r.int8 = sensitivity_table({2, 2}, {ids.begin(), ids.begin() + 4}, {summaries.begin(), summaries.begin() + 4});
  r.removed = sensitivity_table({2}, {"r0", "r1"}, {summary(1.0, 2.0), summary(0.0, 3.0)});
  r.ranking = SensitivityRanking{{1, 1, 0, 0}, {"down", "q", "down", "q"}, {0, 1, 1, 2}, {1.5, 3.5, 5.5, 7.5}};
  return r;
}

HeldoutCandidates heldout_candidates_record() {
  HeldoutCandidates c;
  c.objective = "mean_fdt";
  c.top_k = 1;
  c.best_id = "s1";
  c.roles = {"search_1", "uniform", "best_random"};
  c.ids = {"s1", "u0", "a2"};
  c.names = {"search_r0_00", "uniform", "sample_002"};
  c.sparsity = {0.5, 0.5, 0.52};
  c.selection = {7.5, 6.0, 7.0};
  c.heldout = {7.25, 6.5, 6.75};
  return c;
}
HeldoutComparisons heldout_comparisons_record() {
  HeldoutComparisons r;
  r.statistic = "mean_difference";
  r.units = "prompts";
  r.resamples = 2000;
  r.seed = 3;
  r.roles = {"uniform", "best_random"};
  r.ids = {"u0", "a2"};
  r.estimate = {0.75, 0.5};
  r.lower = {-0.25, -1.0};
  r.upper = {1.5, 2.0};
  r.n = {8, 8};
  return r;
}

constexpr const char* kSchemaHealId = "0123456789abcdef";  // <id> of the /heal section

HealRecord heal_record() {
  HealRecord r;
  r.id = kSchemaHealId;
  r.parent_id = "fedcba9876543210";
  r.name = "drop_layer4+heal";
  r.settings_yaml = "steps: 3\n";
  r.text = "wikitext2.valid.txt";
  r.text_sha256 = "ab";
  r.text_tokens = 4096;
  r.heldout_tokens = 256;
  r.heldout_loss_parent = 3.5;
  r.heldout_loss_healed = 3.25;
  r.seconds = 2.5;
  r.tokens_per_second = 100.0;
  r.loss = {4.0, 3.5, 3.25};
  r.grad_norm = {2.0, 1.5, 1.0};
  r.lr = {1e-4, 5e-5, 1e-5};
  r.tokens = {128, 128, 128};
  return r;
}

BaselinesRecord baselines_record() {
  BaselinesRecord r;
  r.names = {"sensitivity", "owl", "random_search"};
  r.ids = {"b0", "b1", "a2"};
  r.random_search_ids = {"a0", "a1", "a2", "r0"};
  r.owl_outlier_ratio = {1e-4, 2e-5, 3e-5};
  r.objective = "mean_fdt";
  return r;
}

void write_everything(const RunArchive& a) {
  write_heal_record(a, heal_record());
  write_search_baselines(a, baselines_record());
  write_heldout_outcome(a, heldout_candidates_record(), heldout_comparisons_record());
  write_search_sample(a, sample_record());
  write_search_predictor(a, predictor_record());
  write_search_round(a, 0, round_record());
  write_search_outcome(a, pareto_record(), best_record());
  write_sensitivity(a, sensitivity_record());
}

// A bytes / parameters budget adds budget_kind and budget_fraction to /search/sample; a sparsity budget writes
// neither (its archives keep their layout) and reads back as kind "sparsity".
TEST(ArchiveRecords, SampleBudgetKindRoundTrip) {
  const RunArchive a(temp_archive("budget.h5"));
  write_everything(a);
  {
    H5File f(a.path(), H5Mode::Read);
    EXPECT_FALSE(f.has_attr("search/sample", "budget_kind"));
    EXPECT_FALSE(f.has_attr("search/sample", "budget_fraction"));
  }
  EXPECT_EQ(read_search_sample(a)->budget_kind, "sparsity");
  EXPECT_TRUE(std::isnan(read_search_sample(a)->budget_fraction));
  SampleRecord r = sample_record();
  r.budget_kind = "bytes";
  r.budget_fraction = 0.35;
  r.budget_sparsity = std::nan("");
  write_search_sample(a, r);
  const auto back = read_search_sample(a);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->budget_kind, "bytes");
  EXPECT_EQ(back->budget_fraction, 0.35);
  EXPECT_TRUE(std::isnan(back->budget_sparsity));
  EXPECT_EQ(back->seed, 7);
}

TEST(ArchiveRecords, SearchRoundTrip) {
  const RunArchive a(temp_archive("search.h5"));
  write_everything(a);
  const auto sample = read_search_sample(a);
  ASSERT_TRUE(sample.has_value());
  const SampleRecord want = sample_record();
  EXPECT_EQ(sample->ids, want.ids);
  EXPECT_EQ(sample->uniform_id, "u0");
  EXPECT_EQ(sample->best_random_id, "a2");
  EXPECT_EQ(sample->objective, "mean_kl");
  EXPECT_EQ(sample->budget_sparsity, 0.5);
  EXPECT_EQ(sample->budget_tolerance, 0.05);
  EXPECT_EQ(sample->seed, 7);

  const auto predictor = read_search_predictor(a);
  ASSERT_TRUE(predictor.has_value());
  const PredictorRecord p = predictor_record();
  EXPECT_EQ(predictor->model_json, p.model_json);
  EXPECT_EQ(predictor->r2, 0.75);
  EXPECT_EQ(predictor->spearman, 0.8);
  EXPECT_EQ(predictor->mae, 0.01);
  EXPECT_EQ(predictor->feature_names, p.feature_names);
  EXPECT_EQ(predictor->feature_gain, p.feature_gain);
  EXPECT_EQ(predictor->ids, p.ids);
  EXPECT_EQ(predictor->measured, p.measured);
  EXPECT_EQ(predictor->held_out_prediction, p.held_out_prediction);
  EXPECT_EQ(predictor->objective, "mean_kl");
  EXPECT_EQ(predictor->folds, 2);
  EXPECT_EQ(predictor->pairs, 4);

  const auto round = read_search_round(a, 0);
  ASSERT_TRUE(round.has_value());
  EXPECT_EQ(round->ids, round_record().ids);
  EXPECT_EQ(round->predicted, round_record().predicted);
  EXPECT_EQ(round->measured, round_record().measured);
  EXPECT_FALSE(read_search_round(a, 1).has_value());

  const auto pareto = read_search_pareto(a);
  ASSERT_TRUE(pareto.has_value());
  EXPECT_EQ(pareto->ids, pareto_record().ids);
  EXPECT_EQ(pareto->sparsity, pareto_record().sparsity);
  EXPECT_EQ(pareto->objective, pareto_record().objective);
  const auto best = read_search_best(a);
  ASSERT_TRUE(best.has_value());
  EXPECT_EQ(best->id, "s1");
  EXPECT_EQ(best->name, "search_r0_00");
  EXPECT_EQ(best->yaml, "layers: []\n");
  EXPECT_EQ(best->objective, 0.06);
  EXPECT_EQ(best->predicted, 0.05);
  EXPECT_EQ(best->sparsity, 0.52);

  // The search stage clears its outcome when it starts; a search without a best plan writes an empty `best`.
  clear_search_outcome(a);
  EXPECT_FALSE(read_search_pareto(a).has_value());
  EXPECT_FALSE(read_search_best(a).has_value());
  write_search_outcome(a, ParetoRecord{}, std::nullopt);
  EXPECT_FALSE(read_search_best(a).has_value());
  ASSERT_TRUE(read_search_pareto(a).has_value());
  EXPECT_TRUE(read_search_pareto(a)->ids.empty());
  EXPECT_TRUE(read_search_sample(a).has_value());  // untouched
  fs::remove(a.path());
}

TEST(ArchiveRecords, SensitivityRoundTrip) {
  const RunArchive a(temp_archive("sensitivity.h5"));
  write_search_sample(a, sample_record());  // any other transaction first: the file exists, /sensitivity does not
  EXPECT_FALSE(read_sensitivity(a).has_value());
  write_sensitivity(a, sensitivity_record());
  const auto r = read_sensitivity(a);
  ASSERT_TRUE(r.has_value());
  const SensitivityRecord want = sensitivity_record();
  EXPECT_EQ(r->method, "magnitude");
  EXPECT_EQ(r->fdt_threshold, 0.5);
  EXPECT_EQ(r->continuation, 8);
  EXPECT_EQ(r->steps, want.steps);
  EXPECT_EQ(r->layers, want.layers);
  EXPECT_EQ(r->components, want.components);
  EXPECT_EQ(r->sweep.dims, (Shape{2, 2, 2}));
  EXPECT_EQ(r->sweep.plan_ids, want.sweep.plan_ids);
  EXPECT_EQ(r->sweep.fdt, (std::vector<double>{8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_DOUBLE_EQ(r->sweep.sdt[1], 0.7);
  EXPECT_DOUBLE_EQ(r->sweep.kl[3], 0.03);
  for (double v : r->sweep.perplexity) EXPECT_TRUE(std::isnan(v));  // no such summary metric: NaN
  ASSERT_TRUE(r->int8.has_value());
  EXPECT_EQ(r->int8->dims, (Shape{2, 2}));
  EXPECT_EQ(r->int8->fdt, (std::vector<double>{8, 7, 6, 5}));
  ASSERT_TRUE(r->removed.has_value());
  EXPECT_EQ(r->removed->plan_ids, (std::vector<std::string>{"r0", "r1"}));
  EXPECT_EQ(r->removed->kl, (std::vector<double>{2.0, 3.0}));
  EXPECT_EQ(r->ranking.layer, want.ranking.layer);
  EXPECT_EQ(r->ranking.component, want.ranking.component);
  EXPECT_EQ(r->ranking.first_divergent_step, want.ranking.first_divergent_step);
  EXPECT_EQ(r->ranking.fdt_mean, want.ranking.fdt_mean);

  // Without int8 and removal tables, rewriting drops the old ones.
  SensitivityRecord plain = sensitivity_record();
  plain.int8.reset();
  plain.removed.reset();
  write_sensitivity(a, plain);
  EXPECT_FALSE(read_sensitivity(a)->int8.has_value());
  EXPECT_FALSE(read_sensitivity(a)->removed.has_value());
  fs::remove(a.path());
}

TEST(ArchiveRecords, SensitivityTableNeedsOneSummaryPerPlan) {
  EXPECT_THROW(sensitivity_table({2}, {"a", "b"}, {Summary{}}), InternalError);
}

TEST(ArchiveRecords, HealRoundTrip) {
  const RunArchive a(temp_archive("heal.h5"));
  EXPECT_FALSE(read_heal_record(a, kSchemaHealId).has_value());
  EXPECT_TRUE(heal_record_ids(a).empty());
  write_heal_record(a, heal_record());
  const auto r = read_heal_record(a, kSchemaHealId);
  ASSERT_TRUE(r.has_value());
  const HealRecord w = heal_record();
  EXPECT_EQ(r->parent_id, w.parent_id);
  EXPECT_EQ(r->name, w.name);
  EXPECT_EQ(r->settings_yaml, w.settings_yaml);
  EXPECT_EQ(r->text, w.text);
  EXPECT_EQ(r->text_sha256, w.text_sha256);
  EXPECT_EQ(r->text_tokens, w.text_tokens);
  EXPECT_EQ(r->heldout_tokens, w.heldout_tokens);
  EXPECT_EQ(r->heldout_loss_parent, w.heldout_loss_parent);
  EXPECT_EQ(r->heldout_loss_healed, w.heldout_loss_healed);
  EXPECT_EQ(r->seconds, w.seconds);
  EXPECT_EQ(r->tokens_per_second, w.tokens_per_second);
  EXPECT_EQ(r->loss, w.loss);
  EXPECT_EQ(r->grad_norm, w.grad_norm);
  EXPECT_EQ(r->lr, w.lr);
  EXPECT_EQ(r->tokens, w.tokens);
  EXPECT_EQ(heal_record_ids(a), std::vector<std::string>{kSchemaHealId});
  fs::remove(a.path());
}

TEST(ArchiveRecords, HeldoutRoundTripAndRootedArchive) {
  const RunArchive a(temp_archive("heldout.h5"));
  EXPECT_FALSE(read_heldout_candidates(a).has_value());
  write_everything(a);
  const auto c = read_heldout_candidates(a);
  const auto r = read_heldout_comparisons(a);
  ASSERT_TRUE(c && r);
  const HeldoutCandidates wc = heldout_candidates_record();
  EXPECT_EQ(c->roles, wc.roles);
  EXPECT_EQ(c->ids, wc.ids);
  EXPECT_EQ(c->names, wc.names);
  EXPECT_EQ(c->heldout, wc.heldout);
  EXPECT_EQ(c->selection, wc.selection);
  EXPECT_EQ(c->best_id, "s1");
  EXPECT_EQ(c->top_k, 1);
  const HeldoutComparisons wr = heldout_comparisons_record();
  EXPECT_EQ(r->upper, wr.upper);
  EXPECT_EQ(r->n, wr.n);
  EXPECT_EQ(r->seed, 3);
  EXPECT_EQ(r->units, "prompts");
  // begin_heldout removes the outcome (a stage that starts again).
  begin_heldout(a);
  EXPECT_FALSE(read_heldout_candidates(a).has_value());
  EXPECT_FALSE(read_heldout_comparisons(a).has_value());
  // A rooted archive reads and writes under its group only.
  RunArchive held = heldout_archive(a);
  held.write_feature_names({"f0", "f1"});
  {
    const H5File f(a.path(), H5Mode::Read);
    EXPECT_TRUE(f.exists("heldout/plans/feature_names"));
    EXPECT_FALSE(f.exists("plans/feature_names"));
  }
  EXPECT_TRUE(held.plan_status().empty());
  EXPECT_EQ(held.complete_baseline_hash(), "");
  // Read-only, a missing root group is an input error naming it.
  const RunArchive other(a.path(), "nothing");
  EXPECT_THROW(other.plan_status(), InputError);
  fs::remove(a.path());
}

// ---- SCHEMA.md against the writers ----------------------------------------------------------------------------

std::string read_schema() {
  std::ifstream in(std::string(DIVPRUNE_SOURCE_DIR) + "/src/archive/SCHEMA.md");
  EXPECT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The text of the section whose heading starts with `heading`, up to the next "## " heading.
std::string section(const std::string& schema, const std::string& heading) {
  const size_t start = schema.find("\n" + heading);
  EXPECT_NE(start, std::string::npos) << heading;
  const size_t end = schema.find("\n## ", start + 1);
  return schema.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Every `quoted` word of a text.
std::set<std::string> quoted_words(const std::string& text) {
  std::set<std::string> out;
  size_t at = 0;
  while ((at = text.find('`', at)) != std::string::npos) {
    const size_t end = text.find('`', at + 1);
    if (end == std::string::npos) break;
    out.insert(text.substr(at + 1, end - at - 1));
    at = end + 1;
  }
  return out;
}

// The paths (relative to the section's group) the first column of the section's tables names: "`a/b`, `c`" is
// a/b and a/c, "`a/{x,y}`" is a/x and a/y, "<r>" is round 0.
std::set<std::string> documented_paths(const std::string& text) {
  std::set<std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::string cell = line.substr(1, line.find('|', 1) - 1);
    std::string prefix;
    size_t at = 0;
    while ((at = cell.find('`', at)) != std::string::npos) {
      const size_t end = cell.find('`', at + 1);
      std::string path = cell.substr(at + 1, end - at - 1);
      at = end + 1;
      const size_t r = path.find("<r>");
      if (r != std::string::npos) path.replace(r, 3, "0");
      const size_t id = path.find("<id>");
      if (id != std::string::npos) path.replace(id, 4, kSchemaHealId);
      const size_t slash = path.rfind('/');
      if (slash == std::string::npos) path = prefix + path;
      else prefix = path.substr(0, slash + 1);
      const size_t brace = path.find('{');
      if (brace == std::string::npos) {
        out.insert(path);
        continue;
      }
      const std::string head = path.substr(0, brace);
      std::istringstream names(path.substr(brace + 1, path.find('}') - brace - 1));
      std::string name;
      while (std::getline(names, name, ',')) out.insert(head + name);
    }
  }
  // A documented path documents its parent groups.
  std::set<std::string> parents;
  for (const std::string& path : out)
    for (size_t slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      parents.insert(path.substr(0, slash));
  out.insert(parents.begin(), parents.end());
  return out;
}

// Every group and dataset below `group` (relative paths), and every attribute name on them and on `group`.
void walk(const H5File& f, const std::string& group, const std::string& relative, std::set<std::string>& paths,
          std::set<std::string>& attributes) {
  for (const std::string& a : f.attr_names(group)) attributes.insert(a);
  for (const std::string& child : f.children(group)) {
    const std::string path = group + "/" + child, rel = relative.empty() ? child : relative + "/" + child;
    paths.insert(rel);
    if (f.is_group(path)) {
      walk(f, path, rel, paths, attributes);
    } else {
      // Every dataset carries units and description.
      EXPECT_TRUE(f.has_attr(path, "units")) << path;
      EXPECT_TRUE(f.has_attr(path, "description")) << path;
      EXPECT_FALSE(f.attr_string(path, "description").empty()) << path;
    }
  }
}

void expect_schema_agrees(const H5File& f, const std::string& group, const std::string& text) {
  std::set<std::string> written, attributes;
  walk(f, group, "", written, attributes);
  const std::set<std::string> documented = documented_paths(text), words = quoted_words(text);
  for (const std::string& path : written)
    EXPECT_TRUE(documented.count(path)) << group << "/" << path << " is written but not in SCHEMA.md";
  for (const std::string& path : documented)
    EXPECT_TRUE(written.count(path)) << group << "/" << path << " is in SCHEMA.md but not written";
  for (const std::string& a : attributes) {
    if (a == "units" || a == "description") continue;
    EXPECT_TRUE(words.count(a)) << group << ": attribute " << a << " is written but not in SCHEMA.md";
  }
}

TEST(ArchiveRecords, BaselinesRoundTrip) {
  const RunArchive a(temp_archive("baselines.h5"));
  write_everything(a);
  const auto got = read_search_baselines(a);
  ASSERT_TRUE(got.has_value());
  const BaselinesRecord want = baselines_record();
  EXPECT_EQ(got->names, want.names);
  EXPECT_EQ(got->ids, want.ids);
  EXPECT_EQ(got->random_search_ids, want.random_search_ids);
  EXPECT_EQ(got->owl_outlier_ratio, want.owl_outlier_ratio);
  EXPECT_EQ(got->objective, want.objective);
  fs::remove(a.path());
}

TEST(ArchiveRecords, SchemaDocumentsExactlyWhatTheWritersWrite) {
  const RunArchive a(temp_archive("schema.h5"));
  write_everything(a);
  const std::string schema = read_schema();
  const H5File f(a.path(), H5Mode::Read);
  expect_schema_agrees(f, "search", section(schema, "## `/search`"));
  expect_schema_agrees(f, "sensitivity", section(schema, "## `/sensitivity`"));
  expect_schema_agrees(f, "heldout", section(schema, "## `/heldout`"));
  expect_schema_agrees(f, "heal", section(schema, "## `/heal`"));
  EXPECT_EQ(documented_paths(section(schema, "## `/heal`")).count(std::string(kSchemaHealId) + "/grad_norm"), 1u);
  EXPECT_EQ(documented_paths(section(schema, "## `/heldout`")).count("comparisons/upper"), 1u);
  // The check is not vacuous.
  EXPECT_EQ(documented_paths(section(schema, "## `/search`")).count("predictor/spearman"), 1u);
  EXPECT_EQ(documented_paths(section(schema, "## `/sensitivity`")).count("int8/kl"), 1u);
  fs::remove(a.path());
}

// ---- I/O failures -----------------------------------------------------------------------------------------------

TEST(ArchiveRecords, WriteFailuresAreIoErrorsAndMissingDataIsInputError) {
  const RunArchive a(temp_archive("io.h5"));
  write_search_sample(a, sample_record());
  H5File readonly(a.path(), H5Mode::Read);
  EXPECT_THROW(readonly.write_scalar("search/x", 1.0), IoError);
  EXPECT_THROW(readonly.create_group("search/y"), IoError);
  EXPECT_THROW(readonly.set_attr("search/sample", "seed", int64_t{1}), IoError);
  EXPECT_THROW(readonly.remove("search/sample/ids"), IoError);
  EXPECT_THROW(readonly.read_double("search/nothing"), InputError);
  EXPECT_THROW(readonly.attr_int("search/sample", "nothing"), InputError);
  readonly.close();
  EXPECT_NO_THROW(readonly.close());  // closing twice is a no-op
  // Exit codes: input 2, I/O 3, anything else 1.
  EXPECT_EQ(exit_code_for(IoError("x")), kExitIo);
  EXPECT_EQ(exit_code_for(InputError("x")), kExitInput);
  EXPECT_EQ(exit_code_for(InternalError("x")), kExitInternal);
  EXPECT_EQ(exit_code_for(std::runtime_error("x")), kExitInternal);
  EXPECT_NE(kExitIo, kExitInput);
  fs::remove(a.path());
}

}  // namespace
}  // namespace divprune

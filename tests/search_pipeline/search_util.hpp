#pragma once
// A small search run on tiny-llama2-trained: the evaluation configuration of tests/metrics/run_util.hpp plus the
// space / sample / train / search sections.
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/metrics/run_util.hpp"

namespace divprune::test {

inline constexpr double kBudget = 0.4, kTolerance = 0.04;

inline std::string search_sections(int samples = 12, int rounds = 2, int per_round = 3,
                                   const std::string& objective = "mean_kl") {
  return "space:\n"
         "  sparsity_levels: [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]\n"
         "  methods: [magnitude, magnitude_row]\n"
         "  int8: true\n"
         "  removable_layers: [1, 2, 3, 4]\n"
         "  max_removed_layers: 1\n"
         "  budget: {sparsity: 0.4, tolerance: 0.04}\n"
         "sample:\n  count: " + std::to_string(samples) + "\n  seed: 3\n"
         "train:\n  objective: " + objective + "\n  folds: 4\n  rounds: 60\n  max_depth: 3\n"
         "search:\n  rounds: " + std::to_string(rounds) + "\n  evaluate: " + std::to_string(per_round) +
         "\n  generations: 8\n  population: 24\n  parents: 6\n  seed: 5\n";
}

// tests/metrics config with no evaluate plans and the search sections; stages given with --set.
inline std::string search_config(const fs::path& archive, const std::string& sections, int ctx = 32, int chunks = 2) {
  std::string c = config(archive, "    - base\n", ctx, chunks, 64);
  return c + sections;
}

// Occurrences of `needle` in `text`, e.g. the "archived plan" lines of a run's stderr (one per plan written).
inline size_t count_in(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

// What the sample and search stages leave in an archive, for comparing two runs of the same configuration.
struct SearchOutcome {
  struct Plan {
    bool complete = false;
    int64_t replica = -1, run_index = -1;
    std::map<std::string, double> summary;
  };
  std::map<std::string, Plan> plans;  // every group under /plans
  std::vector<std::string> sample_ids;
  std::string uniform_id;
  std::vector<std::vector<std::string>> round_ids;  // /search/rounds/<r>/ids, r = 0, 1, ...
  std::vector<std::vector<double>> predicted, measured;
  std::string best;                  // /search/best id
  std::vector<std::string> pareto;   // /search/pareto/ids
  std::string predictor_json;        // /search/predictor/model_json (the final refit)
  // Ids the sample and search stages evaluated (sample duplicates once).
  std::set<std::string> evaluated() const {
    std::set<std::string> ids(sample_ids.begin(), sample_ids.end());
    if (!uniform_id.empty()) ids.insert(uniform_id);
    for (const auto& r : round_ids) ids.insert(r.begin(), r.end());
    return ids;
  }
};

inline SearchOutcome read_search_outcome(const fs::path& archive) {
  SearchOutcome o;
  H5File f(archive, H5Mode::Read);
  for (const std::string& id : f.children("plans")) {
    const std::string g = "plans/" + id;
    if (!f.is_group(g)) continue;  // plans/feature_names
    SearchOutcome::Plan& p = o.plans[id];
    p.complete = f.has_attr(g, "complete") && f.attr_int(g, "complete") == 1;
    if (!p.complete) continue;
    p.replica = f.attr_int(g, "replica");
    p.run_index = f.attr_int(g, "run_index");
    for (const std::string& name : f.children(g + "/summary")) p.summary[name] = f.read_double(g + "/summary/" + name)[0];
  }
  if (f.exists("search/sample/ids")) {
    o.sample_ids = f.read_strings("search/sample/ids");
    o.uniform_id = f.attr_string("search/sample", "uniform_id");
  }
  for (int r = 0; f.exists("search/rounds/" + std::to_string(r)); ++r) {
    const std::string g = "search/rounds/" + std::to_string(r);
    o.round_ids.push_back(f.read_strings(g + "/ids"));
    o.predicted.push_back(f.read_double(g + "/predicted"));
    o.measured.push_back(f.read_double(g + "/measured"));
  }
  if (f.exists("search/best") && f.has_attr("search/best", "id")) o.best = f.attr_string("search/best", "id");
  if (f.exists("search/pareto/ids")) o.pareto = f.read_strings("search/pareto/ids");
  if (f.exists("search/predictor/model_json")) o.predictor_json = f.read_strings("search/predictor/model_json")[0];
  return o;
}

// Summary scalars that count discrete events (tokens, argmax agreement, FDT / SDT, multiple-choice picks): equal
// whenever the argmaxes are, whatever the float rounding of the logits.
inline bool discrete_summary(const std::string& name) {
  for (const char* prefix : {"tokens", "kl_tokens", "same_top1", "fdt_", "sdt_", "prompts", "continuation", "mc_"})
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

// Same plans with the same summaries: discrete ones exactly, the others within `abs + rel * |value|`
// (NaN equals NaN). Returns the continuous summary that came closest to its tolerance.
struct SummaryDifference {
  double of_tolerance = 0.0;  // |difference| / tolerance: at most 1 when the check passed
  double absolute = 0.0, relative = 0.0;
  std::string where;  // "<plan id> <summary name>"
};
inline SummaryDifference expect_same_plan_summaries(const SearchOutcome& a, const SearchOutcome& b, double rel,
                                                    double abs, const std::string& what) {
  SummaryDifference worst;
  EXPECT_EQ(a.plans.size(), b.plans.size()) << what;
  for (const auto& [id, x] : a.plans) {
    const auto it = b.plans.find(id);
    if (it == b.plans.end()) {
      ADD_FAILURE() << what << ": plan " << id << " only in the first archive";
      continue;
    }
    const SearchOutcome::Plan& y = it->second;
    EXPECT_EQ(x.complete, y.complete) << what << " " << id;
    EXPECT_EQ(x.summary.size(), y.summary.size()) << what << " " << id;
    for (const auto& [name, u] : x.summary) {
      const auto jt = y.summary.find(name);
      if (jt == y.summary.end()) {
        ADD_FAILURE() << what << ": " << id << " has no summary " << name << " in the second archive";
        continue;
      }
      const double v = jt->second;
      if (std::isnan(u) || std::isnan(v)) {
        EXPECT_TRUE(std::isnan(u) && std::isnan(v)) << what << " " << id << " " << name << ": " << u << " vs " << v;
      } else if (discrete_summary(name)) {
        EXPECT_EQ(u, v) << what << " " << id << " " << name;
      } else {
        EXPECT_NEAR(u, v, abs + rel * std::fabs(u)) << what << " " << id << " " << name;
        const double d = std::fabs(u - v), tolerance = abs + rel * std::fabs(u);
        if (d > 0.0 && d / tolerance > worst.of_tolerance)
          worst = {d / tolerance, d, d / std::max(std::fabs(u), std::fabs(v)), id + " " + name};
      }
    }
  }
  return worst;
}

// The start of a `heal:` section healing one "chop" plan (layer 4 removed, 40% magnitude everywhere, layer 1's
// down in int8) on `text`; each test appends its own token counts and schedule.
inline std::string chop_heal_section(const std::string& text) {
  return "heal:\n"
         "  plans:\n"
         "    - name: chop\n"
         "      plan:\n"
         "        drop_layers: [4]\n"
         "        components:\n"
         "          - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.4}}\n"
         "          - {layers: [1], names: [down], quant: int8}\n"
         "  text: " + text + "\n";
}

}  // namespace divprune::test

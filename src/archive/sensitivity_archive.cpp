#include "archive/sensitivity_archive.hpp"

#include <fmt/format.h>

#include "archive/archive_file.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {

constexpr const char* kGroup = "sensitivity";

// The four metric datasets of a table: name, the plan summary it comes from, units, description.
struct MetricColumn {
  const char* name;
  SummaryMetric metric;
  const char* units;
  const char* description;
  std::vector<double> SensitivityTable::*values;
};
const MetricColumn kColumns[] = {
    {"fdt", SummaryMetric::FdtMean, "tokens", "mean first divergent token of the greedy continuations (N: none diverged)",
     &SensitivityTable::fdt},
    {"sdt", SummaryMetric::SdtMean, "1", "mean share of divergent tokens of the greedy continuations", &SensitivityTable::sdt},
    {"kl", SummaryMetric::KlMean, "nats", "mean per-token KL(base || compressed) over the kept tokens", &SensitivityTable::kl},
    {"perplexity", SummaryMetric::Perplexity, "", "perplexity of the perplexity text", &SensitivityTable::perplexity}};

void write_table(H5File& f, const std::string& g, const SensitivityTable& t) {
  f.write_strings(g + "/plan_ids", t.plan_ids);
  annotate(f, g + "/plan_ids", "", "plan id of each cell (/plans/<id>), flattened in row-major order of the tables");
  for (const MetricColumn& c : kColumns) {
    const std::vector<double>& values = t.*c.values;
    EXPECTS(static_cast<int64_t>(values.size()) == shape_numel(t.dims), "sensitivity table: one value per cell");
    const std::string dataset = g + "/" + c.name;
    f.write_double(dataset, t.dims, values.data());
    annotate(f, dataset, c.units, c.description);
  }
}

SensitivityTable read_table(const H5File& f, const std::string& g) {
  SensitivityTable t;
  t.plan_ids = f.read_strings(g + "/plan_ids");
  for (const MetricColumn& c : kColumns) t.*c.values = f.read_double(g + "/" + c.name, &t.dims);
  return t;
}

}  // namespace

SensitivityTable sensitivity_table(const Shape& dims, const std::vector<std::string>& plan_ids,
                                   const std::vector<Summary>& summaries) {
  EXPECTS(plan_ids.size() == summaries.size(), "sensitivity_table: one summary per plan");
  SensitivityTable t;
  t.dims = dims;
  t.plan_ids = plan_ids;
  for (const MetricColumn& c : kColumns)
    for (const Summary& s : summaries) (t.*c.values).push_back(s[c.metric]);
  return t;
}

void write_sensitivity(const RunArchive& archive, const SensitivityRecord& r) {
  const std::string g = kGroup;
  write_transaction(archive, [&](H5File& f) {
    f.remove(g);
    f.create_group(g);
    f.write_double(g + "/steps", {static_cast<int64_t>(r.steps.size())}, r.steps.data());
    annotate(f, g + "/steps", "fraction", "sparsity of each step of the sweep");
    f.write_int64(g + "/layers", {static_cast<int64_t>(r.layers.size())}, r.layers.data());
    annotate(f, g + "/layers", "", "decoder layer of each table row");
    f.write_strings(g + "/components", r.components);
    annotate(f, g + "/components", "", "component of each table column");
    f.set_attr(g, "method", r.method);
    f.set_attr(g, "fdt_threshold", r.fdt_threshold);
    f.set_attr(g, "continuation", r.continuation);
    write_table(f, g, r.sweep);
    if (r.int8) {
      f.create_group(g + "/int8");
      write_table(f, g + "/int8", *r.int8);
    }
    if (r.removed) {
      f.create_group(g + "/removed");
      write_table(f, g + "/removed", *r.removed);
    }
    const SensitivityRanking& k = r.ranking;
    const int64_t n = static_cast<int64_t>(k.layer.size());
    EXPECTS(k.component.size() == k.layer.size() && k.first_divergent_step.size() == k.layer.size() &&
                k.fdt_mean.size() == k.layer.size(),
            "sensitivity ranking: columns of one length");
    const std::string rk = g + "/ranking";
    f.create_group(rk);
    f.write_int64(rk + "/layer", {n}, k.layer.data());
    annotate(f, rk + "/layer", "", "layer of each ranked component, most sensitive first");
    f.write_strings(rk + "/component", k.component);
    annotate(f, rk + "/component", "", "component name of each ranked component");
    f.write_int64(rk + "/first_divergent_step", {n}, k.first_divergent_step.data());
    annotate(f, rk + "/first_divergent_step", "",
             "index into steps of the first step whose mean FDT < fdt_threshold * continuation; len(steps) if none");
    f.write_double(rk + "/fdt_mean", {n}, k.fdt_mean.data());
    annotate(f, rk + "/fdt_mean", "tokens", "mean FDT over the steps (tie-break: lower is more sensitive)");
    f.set_attr(g, "complete", int64_t{1});
  });
}

std::optional<SensitivityRecord> read_sensitivity(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  const std::string g = kGroup;
  if (!f.exists(g) || !f.has_attr(g, "complete") || f.attr_int(g, "complete") != 1) return std::nullopt;
  SensitivityRecord r;
  r.method = f.attr_string(g, "method");
  r.fdt_threshold = f.attr_double(g, "fdt_threshold");
  r.continuation = f.attr_int(g, "continuation");
  r.steps = f.read_double(g + "/steps");
  r.layers = f.read_int64(g + "/layers");
  r.components = f.read_strings(g + "/components");
  r.sweep = read_table(f, g);
  if (f.exists(g + "/int8")) r.int8 = read_table(f, g + "/int8");
  if (f.exists(g + "/removed")) r.removed = read_table(f, g + "/removed");
  const std::string rk = g + "/ranking";
  r.ranking.layer = f.read_int64(rk + "/layer");
  r.ranking.component = f.read_strings(rk + "/component");
  r.ranking.first_divergent_step = f.read_int64(rk + "/first_divergent_step");
  r.ranking.fdt_mean = f.read_double(rk + "/fdt_mean");
  return r;
}

}  // namespace divprune

#include "archive/heldout_archive.hpp"

#include <fmt/format.h>

#include "archive/archive_file.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {

constexpr const char* kCandidates = "heldout/candidates";
constexpr const char* kComparisons = "heldout/comparisons";

std::vector<double> as_double(const std::vector<int32_t>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace

PlanUnits read_plan_units(const RunArchive& archive, const std::string& id) {
  const H5File f = open_archive_read(archive);
  const std::string g = "plans/" + id;
  if (!f.exists(g) || !f.has_attr(g, "complete") || f.attr_int(g, "complete") != 1)
    throw InputError(fmt::format("{}: no complete plan {} under /{}", archive.path().string(), id, g));
  PlanUnits u;
  u.fdt = as_double(f.read_int32(g + "/prompts/fdt"));
  u.sdt = f.read_double(g + "/prompts/sdt");
  if (f.exists(g + "/tokens/kl")) u.kl = f.read_double(g + "/tokens/kl");
  if (f.exists(g + "/tokens/nll")) u.nll = f.read_double(g + "/tokens/nll");
  return u;
}

void begin_heldout(const RunArchive& archive) {
  write_transaction(archive, [&](H5File& f) {
    f.create_group(kHeldoutRoot);
    f.remove(kCandidates);
    f.remove(kComparisons);
  });
}

void write_heldout_outcome(const RunArchive& archive, const HeldoutCandidates& c, const HeldoutComparisons& r) {
  write_transaction(archive, [&](H5File& f) {
    f.remove(kCandidates);
    f.remove(kComparisons);
    const std::string g = kCandidates;
    f.create_group(g);
    write_annotated_strings(f, g + "/roles", c.roles, "", "role of the row: search_<rank> (rank by the selection objective), uniform, best_random");
    write_annotated_strings(f, g + "/ids", c.ids, "", "plan id (/plans/<id> and /heldout/plans/<id>)");
    write_annotated_strings(f, g + "/names", c.names, "", "plan name");
    write_annotated_doubles(f, g + "/sparsity", c.sparsity, "fraction", "linear sparsity of the plan");
    write_annotated_doubles(f, g + "/selection", c.selection, "objective", "the objective on the evaluation data the search selected on");
    write_annotated_doubles(f, g + "/heldout", c.heldout, "objective", "the objective on the held-out data");
    f.set_attr(g, "objective", c.objective);
    f.set_attr(g, "top_k", c.top_k);
    f.set_attr(g, "best_id", c.best_id);
    f.set_attr(g, "complete", int64_t{1});
    const std::string h = kComparisons;
    f.create_group(h);
    write_annotated_strings(f, h + "/roles", r.roles, "", "role of the reference plan the held-out best is compared with");
    write_annotated_strings(f, h + "/ids", r.ids, "", "reference plan id");
    write_annotated_doubles(f, h + "/estimate", r.estimate, "objective",
            "improvement of the held-out best over the reference (positive: better), on the held-out data");
    write_annotated_doubles(f, h + "/lower", r.lower, "objective", "2.5th percentile of the paired bootstrap of the improvement");
    write_annotated_doubles(f, h + "/upper", r.upper, "objective", "97.5th percentile of the paired bootstrap of the improvement");
    f.write_int64(h + "/n", {static_cast<int64_t>(r.n.size())}, r.n.data());
    annotate(f, h + "/n", "units", "prompts or tokens resampled (attribute units)");
    f.set_attr(h, "statistic", r.statistic);
    f.set_attr(h, "units", r.units);
    f.set_attr(h, "resamples", r.resamples);
    f.set_attr(h, "seed", r.seed);
    f.set_attr(h, "complete", int64_t{1});
  });
}

std::optional<HeldoutCandidates> read_heldout_candidates(const RunArchive& archive) {
  if (!archive.exists()) return std::nullopt;
  const H5File f = open_archive_read(archive);
  const std::string g = kCandidates;
  if (!group_complete(f, g)) return std::nullopt;
  HeldoutCandidates c;
  c.roles = f.read_strings(g + "/roles");
  c.ids = f.read_strings(g + "/ids");
  c.names = f.read_strings(g + "/names");
  c.sparsity = f.read_double(g + "/sparsity");
  c.selection = f.read_double(g + "/selection");
  c.heldout = f.read_double(g + "/heldout");
  c.objective = f.attr_string(g, "objective");
  c.top_k = f.attr_int(g, "top_k");
  c.best_id = f.attr_string(g, "best_id");
  return c;
}

std::optional<HeldoutComparisons> read_heldout_comparisons(const RunArchive& archive) {
  if (!archive.exists()) return std::nullopt;
  const H5File f = open_archive_read(archive);
  const std::string h = kComparisons;
  if (!group_complete(f, h)) return std::nullopt;
  HeldoutComparisons r;
  r.roles = f.read_strings(h + "/roles");
  r.ids = f.read_strings(h + "/ids");
  r.estimate = f.read_double(h + "/estimate");
  r.lower = f.read_double(h + "/lower");
  r.upper = f.read_double(h + "/upper");
  r.n = f.read_int64(h + "/n");
  r.statistic = f.attr_string(h, "statistic");
  r.units = f.attr_string(h, "units");
  r.resamples = f.attr_int(h, "resamples");
  r.seed = f.attr_int(h, "seed");
  return r;
}

}  // namespace divprune

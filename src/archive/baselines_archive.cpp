#include "archive/baselines_archive.hpp"

#include "archive/archive_file.hpp"

namespace divprune {

namespace {
constexpr const char* kBaselines = "search/baselines";

}  // namespace

void write_search_baselines(const RunArchive& archive, const BaselinesRecord& r) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = kBaselines;
    f.remove(g);
    f.create_group(g);
    write_annotated_strings(f, g + "/names", r.names, "", "baseline names (sensitivity, owl, random_search)");
    write_annotated_strings(f, g + "/ids", r.ids, "", "plan id of each baseline (random_search: its best plan by the objective)");
    if (!r.random_search_ids.empty())
      write_annotated_strings(f, g + "/random_search_ids", r.random_search_ids, "",
                              "every plan of the equal-evaluation random search (the sample stage's plans, then the extra draws)");
    if (!r.owl_outlier_ratio.empty()) {
      write_annotated_doubles(f, g + "/owl_outlier_ratio", r.owl_outlier_ratio, "",
                              "per layer: share of the normalised projection inputs (attn_norm, ffn_norm) with |x| > M mean|x| on the "
                              "uncompressed model over the prompts (OWL)");
    }
    f.set_attr(g, "objective", r.objective);
    f.set_attr(g, "complete", int64_t{1});
  });
}

std::optional<BaselinesRecord> read_search_baselines(const RunArchive& archive) {
  const H5File f = open_archive_read(archive);
  if (!f.exists(kBaselines) || !f.has_attr(kBaselines, "complete")) return std::nullopt;
  const std::string g = kBaselines;
  BaselinesRecord r;
  r.names = f.read_strings(g + "/names");
  r.ids = f.read_strings(g + "/ids");
  if (f.exists(g + "/random_search_ids")) r.random_search_ids = f.read_strings(g + "/random_search_ids");
  if (f.exists(g + "/owl_outlier_ratio")) r.owl_outlier_ratio = f.read_double(g + "/owl_outlier_ratio");
  r.objective = f.attr_string(g, "objective");
  return r;
}

}  // namespace divprune

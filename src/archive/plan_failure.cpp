#include "archive/plan_failure.hpp"

#include "archive/archive_file.hpp"

namespace divprune {

namespace {
constexpr const char* kFailed = "failed";
}

void write_failed_plan(const RunArchive& archive, const PlanRecord& r, const std::string& reason) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = "plans/" + r.id;
    f.remove(g);
    f.create_group(g);
    f.set_attr(g, "complete", int64_t{0});
    f.set_attr(g, "status", std::string(kFailed));
    f.set_attr(g, "failure_reason", reason);
    f.set_attr(g, "name", r.name);
    f.set_attr(g, "hash", r.hash);
    f.set_attr(g, "source", r.source);
    f.set_attr(g, "plan_yaml", r.yaml);
    f.set_attr(g, "order", r.order);
    f.set_attr(g, "run_index", r.run_index);
    f.set_attr(g, "replica", r.replica);
    f.set_attr(g, "seconds", r.seconds);
    f.set_attr(g, "sparsity", r.sparsity);
    f.set_attr(g, "parameters", r.parameters);
    f.write_float(g + "/features", {static_cast<int64_t>(r.features.size())}, r.features.data());
    annotate(f, g + "/features", "mixed", "numeric feature vector of the plan (names: /plans/feature_names)");
    f.set_attr(g, "complete", int64_t{1});
  });
}

std::optional<std::string> read_plan_failure(const RunArchive& archive, const std::string& id) {
  if (!archive.exists()) return std::nullopt;
  const H5File f = open_archive_read(archive);
  const std::string g = "plans/" + id;
  if (!f.exists(g) || !f.has_attr(g, "status") || f.attr_string(g, "status") != kFailed) return std::nullopt;
  return f.has_attr(g, "failure_reason") ? f.attr_string(g, "failure_reason") : std::string("(no reason recorded)");
}

}  // namespace divprune

#include "archive/plan_failure.hpp"

#include "archive/archive_file.hpp"

namespace divprune {

namespace {
constexpr const char* kFailed = "failed";
}

void write_failed_plan(const RunArchive& archive, const PlanRecord& r, const std::string& reason) {
  write_transaction(archive, [&](H5File& f) {
    const std::string g = "plans/" + r.id;
    write_plan_header(f, r);
    f.set_attr(g, "status", std::string(kFailed));
    f.set_attr(g, "failure_reason", reason);
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

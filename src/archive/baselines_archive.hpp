#pragma once
// Typed reader and writer of /search/baselines (src/archive/SCHEMA.md), written by the baselines stage
// (pipelines/baselines.cpp): which evaluated plan each named baseline is. The plans themselves are ordinary
// /plans/<id> groups.
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.hpp"

namespace divprune {

struct BaselinesRecord {
  std::vector<std::string> names;  // "sensitivity", "owl", "random_search"
  std::vector<std::string> ids;    // the plan of each name (random_search: its best plan by the objective)
  std::vector<std::string> random_search_ids;  // every plan of the equal-evaluation random search, in draw order
  std::vector<double> owl_outlier_ratio;      // (L) the OWL baseline's per-layer outlier ratio (empty without owl)
  std::string objective;
};
// Replaces /search/baselines, `complete` set last.
void write_search_baselines(const RunArchive& archive, const BaselinesRecord& record);
// std::nullopt when /search/baselines is missing or not complete.
std::optional<BaselinesRecord> read_search_baselines(const RunArchive& archive);

}  // namespace divprune

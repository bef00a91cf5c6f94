#pragma once
// Typed reader and writer of /sensitivity (src/archive/SCHEMA.md "/sensitivity"), the sweep of
// pipelines/sensitivity.cpp. The writer is one transaction and writes exactly what SCHEMA.md lists.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "archive/archive.hpp"
#include "core/tensor.hpp"
#include "metrics/summary.hpp"

namespace divprune {

// One table of the sweep: a plan per cell and four of its summary metrics (NaN where the run has none, e.g. no
// KL without base log-probs), each flattened row-major over `dims`.
struct SensitivityTable {
  Shape dims;
  std::vector<std::string> plan_ids;
  std::vector<double> fdt, sdt, kl, perplexity;
};
// The plan summary metric behind each table column: fdt <- fdt_mean, sdt <- sdt_mean, kl <- kl_mean,
// perplexity <- perplexity.
SensitivityTable sensitivity_table(const Shape& dims, const std::vector<std::string>& plan_ids,
                                   const std::vector<Summary>& summaries);

struct SensitivityRanking {
  std::vector<int64_t> layer;
  std::vector<std::string> component;
  std::vector<int64_t> first_divergent_step;
  std::vector<double> fdt_mean;
};

struct SensitivityRecord {
  std::string method;  // prune method of the sweep
  double fdt_threshold = 0.0;
  int64_t continuation = 0;
  std::vector<double> steps;
  std::vector<int64_t> layers;
  std::vector<std::string> components;
  SensitivityTable sweep;                  // (L, C, S)
  std::optional<SensitivityTable> int8;    // (L, C)
  std::optional<SensitivityTable> removed; // (L)
  SensitivityRanking ranking;              // most sensitive first
};

// Replaces /sensitivity, `complete` set last.
void write_sensitivity(const RunArchive& archive, const SensitivityRecord& record);
// std::nullopt when /sensitivity is missing or not complete.
std::optional<SensitivityRecord> read_sensitivity(const RunArchive& archive);

}  // namespace divprune

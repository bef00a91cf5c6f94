#pragma once
// Plans whose compressed model produced non-finite outputs (issue 14): archived as failed instead of as numbers.
//
// A failed plan is a /plans/<id> group like any other (identity attributes, features, complete = 1, so a resumed
// run does not redo a deterministic failure) plus the attributes status = "failed" and failure_reason (plan,
// where the first non-finite value appeared: chunk / prompt / item, and the layer when it was located). It holds
// no metric datasets and no summary. The search's training pairs (read_plan_pairs) leave it out; the summary
// table prints it as failed. A plan without `status` succeeded (archives written before this attribute existed).
#include <optional>
#include <string>

#include "archive/archive.hpp"

namespace divprune {

// Writes /plans/<record.id> as a failed plan in one transaction (`complete` last); replaces an incomplete one.
void write_failed_plan(const RunArchive& archive, const PlanRecord& record, const std::string& reason);
// The failure reason of a plan archived as failed; nullopt for a plan that succeeded or is not there.
std::optional<std::string> read_plan_failure(const RunArchive& archive, const std::string& id);

}  // namespace divprune

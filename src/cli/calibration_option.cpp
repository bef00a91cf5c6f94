#include "cli/calibration_option.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "compress/apply.hpp"
#include "compress/calibration.hpp"
#include "core/errors.hpp"
#include "model/tokenizer.hpp"
#include "parallel/topology.hpp"

namespace divprune {

void CalibrationOption::add_to(CLI::App& sub) {
  sub.add_option("--calibration", text,
                 "Calibration text for plans with wanda / sparsegpt / gptq (keep it apart from the evaluation text)");
  sub.add_option("--calibration-sequences", sequences, "Calibration sequences")->capture_default_str()->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--calibration-length", length, "Tokens per calibration sequence (0: the model's context, at most 2048)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  sub.add_option("--calibration-seed", seed, "Seed of the calibration windows")->capture_default_str();
  sub.add_option("--calibration-mode", mode,
                 "cached: statistics of the base model, once; sequential: layer by layer on the compressed layers "
                 "before it (one forward pass per layer)")
      ->capture_default_str()->check(CLI::IsMember({"cached", "sequential"}));
}

void apply_plan_with_calibration(const std::string& plan_file, const CalibrationOption& calibration,
                                 const std::string& tokenizer, ModelReplica& replica) {
  const ValidatedPlan plan = load_replica_plan(plan_file, replica);
  using Clock = std::chrono::steady_clock;
  std::optional<CalibrationStats> stats;
  double calibration_s = 0.0;
  std::vector<std::vector<int32_t>> sequences;
  const bool sequential = calibration.mode == "sequential" && plan.plan().needs_calibration();
  if (plan.plan().needs_calibration()) {
    world_step([&] {
      if (calibration.text.empty())
        throw InputError(fmt::format("{}: the plan uses calibrated operators (wanda, sparsegpt or gptq): give "
                                     "--calibration TEXT", plan_file));
      if (tokenizer.empty())
        throw InputError(fmt::format("{}: --calibration needs --tokenizer to tokenise {}", plan_file, calibration.text));
      const int64_t context = replica.config().max_seq_len;
      CalibrationSpec spec{calibration.text, calibration.sequences,
                           calibration.length > 0 ? calibration.length : std::min<int64_t>(2048, context),
                           calibration.seed};
      if (spec.length > context)
        throw InputError(fmt::format("--calibration-length {} exceeds the model's context {}", spec.length, context));
      sequences = calibration_sequences(Tokenizer(tokenizer), spec);
    });
    if (!sequential) {
      const auto start = Clock::now();
      stats = collect_calibration(replica.model(), sequences);
      calibration_s = std::chrono::duration<double>(Clock::now() - start).count();
    }
  }
  const auto start = Clock::now();
  if (sequential)  // calibration and compression interleaved: the time is all "apply"
    apply_plan_sequential(plan, replica.pristine(), replica.model(), sequences);
  else
    apply_plan(plan, replica.pristine(), replica.model(), stats ? &*stats : nullptr);
  const double apply_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (replica.topology().is_coordinator()) {
    const PlanSize size = plan_size(plan.plan(), replica.config());
    spdlog::info("applied plan: {} of {} layers removed, linear sparsity {:.4f}, {} linear bytes, {} parameters left "
                 "of {} (calibration {:.2f} s, apply {:.2f} s)",
                 plan.plan().dropped_layers().size(), plan.plan().layers.size(), size.sparsity, size.linear_bytes,
                 size.parameters, replica.config().parameter_count(), calibration_s, apply_s);
  }
}

}  // namespace divprune

#pragma once
// A compression plan: what happens to every one of the seven linear projections (q, k, v, o, gate, up, down)
// of every decoder layer, and which layers are removed. Plans are read from and written to YAML in one form:
//
//   drop_layers: [1]
//   components:
//     - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}}
//     - {layers: [0, 2], names: [gate, up, down], prune: {method: channels, sparsity: 0.25}}
//     - {layers: [2], names: [down], quant: int8}
//
// Entries are applied in order and later ones override earlier ones field by field: an entry that sets only
// `quant` keeps the prune an earlier entry chose for the same component, and `prune: none` / `quant: none`
// clear a field. `layers` is `all`, one 0-based index or a list of them; `names` is a list of the seven
// components (q, k, v, o, gate, up, down), one of them, or `all`. An entry must set prune or quant.
//
// Prune methods (the operators are defined exactly in compress/operators.hpp):
//   magnitude      zero round(s·n) entries of smallest |w| of the whole [out, in] matrix
//   magnitude_row  zero round(s·in) entries of smallest |w| of every output row
//   2:4            in every group of 4 consecutive entries of a row, zero the 2 smallest; sparsity is 0.5
//                  (it may be omitted; any other value is rejected)
//   heads          q, k, v, o only: prune s·Hkv whole KV heads together with their query heads; s·Hkv must be
//                  a whole number (e.g. 0.25 or 0.5 with 4 KV heads)
//   channels       gate, up, down only: prune round(s·F) SwiGLU channels
// Calibrated prunes (compress/calibrated_operators.hpp; need calibration statistics):
//   {method: wanda, sparsity: s} or {method: wanda, pattern: "2:4"} (N:M, keep N of every M, N < M, M | in)
//   {method: sparsegpt, sparsity: s} or {method: sparsegpt, pattern: "4:8"}
// Quantization: `int8` (per output row, symmetric, dequantized for compute), or a grid quantizer
//   quant: {method: gptq|rtn, bits: 2|3|4|8, group_size: 128 (-1 = per row; must divide in), sym: true,
//           act_order: false}   (gptq is calibrated; rtn is its round-to-nearest baseline; defaults as shown)
// Prune first, then quantize.
// round() is round-half-to-even (as Python's round and torch.round); sparsity must lie in [0, 1).
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/enum_names.hpp"
#include "model/config.hpp"
#include "model/shard.hpp"
#include "model/weights.hpp"

namespace divprune {

enum class PruneMethod { Magnitude = 0, MagnitudeRow, TwoFour, Heads, Channels, Wanda, SparseGpt };
// The methods with a one-hot slot in the original per-component feature block (FEATURES.md); the calibrated
// ones (wanda, sparsegpt) are encoded in the calibrated tail of the feature vector instead, so that the block
// layout of plans without them is unchanged.
constexpr int kNumPruneMethods = 5;
constexpr std::array<PruneMethod, kNumPruneMethods> kAllPruneMethods = {
    PruneMethod::Magnitude, PruneMethod::MagnitudeRow, PruneMethod::TwoFour, PruneMethod::Heads,
    PruneMethod::Channels};
inline constexpr auto kPruneMethodNames =
    enum_names<PruneMethod>("prune method", {{PruneMethod::Magnitude, "magnitude"},
                                             {PruneMethod::MagnitudeRow, "magnitude_row"},
                                             {PruneMethod::TwoFour, "2:4"},
                                             {PruneMethod::Heads, "heads"},
                                             {PruneMethod::Channels, "channels"},
                                             {PruneMethod::Wanda, "wanda"},
                                             {PruneMethod::SparseGpt, "sparsegpt"}});
static_assert(kPruneMethodNames.names_unique());
// The uncalibrated methods and quantizations alone: their "unknown name" message lists them as before, and
// names the calibrated ones after it.
inline constexpr auto kUncalibratedPruneMethodNames =
    enum_names<PruneMethod>("prune method", {{PruneMethod::Magnitude, "magnitude"},
                                             {PruneMethod::MagnitudeRow, "magnitude_row"},
                                             {PruneMethod::TwoFour, "2:4"},
                                             {PruneMethod::Heads, "heads"},
                                             {PruneMethod::Channels, "channels"}});
constexpr std::string_view prune_method_name(PruneMethod method) { return kPruneMethodNames.name(method); }
// Methods that need calibration statistics (compress/calibration.hpp).
constexpr bool is_calibrated(PruneMethod m) { return m == PruneMethod::Wanda || m == PruneMethod::SparseGpt; }
// True when `method` may be applied to `component` (heads: attention projections, channels: MLP ones).
bool prune_method_applies(PruneMethod method, Component component);

enum class QuantMethod { None = 0, Int8, Gptq, Rtn };
inline constexpr auto kQuantMethodNames = enum_names<QuantMethod>(
    "quantization",
    {{QuantMethod::None, "none"}, {QuantMethod::Int8, "int8"}, {QuantMethod::Gptq, "gptq"}, {QuantMethod::Rtn, "rtn"}});
static_assert(kQuantMethodNames.names_unique());
inline constexpr auto kBasicQuantMethodNames =
    enum_names<QuantMethod>("quantization", {{QuantMethod::None, "none"}, {QuantMethod::Int8, "int8"}});
constexpr bool is_calibrated(QuantMethod q) { return q == QuantMethod::Gptq; }
// True for the grid quantizers that take QuantParams (gptq, rtn).
constexpr bool has_grid(QuantMethod q) { return q == QuantMethod::Gptq || q == QuantMethod::Rtn; }

struct PruneSpec {
  PruneMethod method = PruneMethod::Magnitude;
  double sparsity = 0.0;  // fraction in [0, 1); 0.5 for 2:4; 1 - N/M for an N:M pattern
  // wanda / sparsegpt only: the N:M pattern (keep N of every M consecutive columns of a row), 0:0 = unstructured.
  int pattern_n = 0, pattern_m = 0;
  bool operator==(const PruneSpec&) const = default;
};

// Parameters of gptq / rtn (default-valued for the other quantizations, so that equal plans compare equal).
struct QuantParams {
  int bits = 4;              // 2, 3, 4 or 8
  int64_t group_size = 128;  // columns per group; -1: one group per row
  bool sym = true;
  bool act_order = false;    // gptq only
  bool operator==(const QuantParams&) const = default;
};

struct ComponentPlan {
  std::optional<PruneSpec> prune;
  QuantMethod quant = QuantMethod::None;
  QuantParams quant_params{};  // used when has_grid(quant)
  // True when the component is left exactly as in the checkpoint (no prune, or a prune of sparsity 0, and no
  // quantization).
  bool is_identity() const { return (!prune || prune->sparsity == 0.0) && quant == QuantMethod::None; }
  bool operator==(const ComponentPlan&) const = default;
};

struct LayerPlan {
  bool removed = false;  // LayerChop: the layer contributes nothing
  std::array<ComponentPlan, kNumComponents> components{};
  bool operator==(const LayerPlan&) const = default;
};

struct CompressionPlan {
  std::vector<LayerPlan> layers;  // (L) one entry per decoder layer of the model

  static CompressionPlan identity(int64_t num_layers);
  ComponentPlan& at(int64_t layer, Component c) { return layers.at(static_cast<size_t>(layer)).components[static_cast<int>(c)]; }
  const ComponentPlan& at(int64_t layer, Component c) const {
    return layers.at(static_cast<size_t>(layer)).components[static_cast<int>(c)];
  }
  std::vector<int64_t> dropped_layers() const;
  bool is_identity() const;
  // True when a (non-removed) component uses wanda, sparsegpt or gptq: applying it needs calibration statistics.
  bool needs_calibration() const;
  // True when a component uses any operator of compress/calibrated_operators.hpp (the above or rtn): its features
  // need the calibrated tail.
  bool uses_calibrated_operators() const;
  bool operator==(const CompressionPlan&) const = default;
};

// ---- Validation ----------------------------------------------------------------------------------------------
// A plan checked against a model and a tensor-parallel size: the only form that compress/apply.hpp applies.
// It is made only where a plan enters the program, by parse_plan / load_plan (a file or a configuration key) or
// validate_plan (a plan built in code), so every check runs once, there, with messages naming that source.
class ValidatedPlan {
 public:
  const CompressionPlan& plan() const { return plan_; }
  // The tensor-parallel size whose shards the plan was checked against. Every rank's shard has the same size
  // (model/shard.hpp), so the size alone decides whether 2:4 groups of row-parallel o/down stay local.
  int tp() const { return tp_; }

 private:
  friend ValidatedPlan validate_plan(CompressionPlan plan, const ModelConfig& config, const std::string& source,
                                     int tp);
  ValidatedPlan(CompressionPlan plan, int tp) : plan_(std::move(plan)), tp_(tp) {}
  CompressionPlan plan_;
  int tp_ = 1;
};

// Checks a plan for a model of `config` cut into `tp` tensor-parallel shards: sizes, sparsities, methods vs
// components, whole KV heads, 2:4 input dimensions divisible by 4, 2:4 groups of row-parallel o/down inside a
// shard (tp > 1: local column count divisible by 4), at least one layer left. Throws InputError naming `source`.
ValidatedPlan validate_plan(CompressionPlan plan, const ModelConfig& config, const std::string& source, int tp = 1);

// ---- YAML ----------------------------------------------------------------------------------------------------
// Parses and validates a plan for a model of `config` run at tensor-parallel size `tp`. Throws InputError naming
// `source` and the key (e.g. "plan.yaml: components[1].prune.sparsity (line 4): 1.2 is outside [0, 1)").
ValidatedPlan parse_plan(const std::string& yaml_text, const ModelConfig& config, const std::string& source,
                         int tp = 1);
ValidatedPlan load_plan(const std::filesystem::path& file, const ModelConfig& config, int tp = 1);
// Canonical YAML of the form above (components grouped by identical settings; parse_plan(plan_to_yaml(p)) == p).
std::string plan_to_yaml(const CompressionPlan& plan);
void save_plan(const CompressionPlan& plan, const std::filesystem::path& file);

// ---- Counting ------------------------------------------------------------------------------------------------
// Number of KV heads the heads method prunes at `sparsity` (s·Hkv, which validation requires to be whole).
int64_t pruned_kv_heads(double sparsity, const ModelConfig& config);
// Number of SwiGLU channels the channels method prunes: round(s·F).
int64_t pruned_channels(double sparsity, const ModelConfig& config);
// Full [out, in] shape of a component's weight.
std::array<int64_t, 2> component_shape(Component component, const ModelConfig& config);
// Entries of the full matrix that the prune sets to zero (whatever their value was before).
int64_t pruned_entries(const PruneSpec& prune, Component component, const ModelConfig& config);

struct PlanSize {
  int64_t linear_parameters = 0;   // entries of all linear projections of all layers of the uncompressed model
  int64_t linear_kept = 0;         // of those, not removed by a dropped layer nor zeroed by a prune
  int64_t linear_int8 = 0;         // of the kept ones, stored as int8
  int64_t parameters = 0;          // whole model (embeddings, norms, lm_head) minus the removed/zeroed entries
  double sparsity = 0.0;           // 1 - linear_kept / linear_parameters
  int64_t linear_bytes = 0;        // kept linear entries at 2 bytes (fp16) or 1 byte (int8); zeros not stored
};
PlanSize plan_size(const CompressionPlan& plan, const ModelConfig& config);

// ---- Feature vector (layout documented in src/compress/FEATURES.md) ------------------------------------------
constexpr int kFeaturesPerComponent = 2 + kNumPruneMethods;                        // sparsity, one-hot, int8
constexpr int kFeaturesPerLayer = kNumComponents * kFeaturesPerComponent + 1;       // + removed flag
// With `calibrated`, the vector ends with a tail of kCalibratedFeatures per (layer, component) encoding the
// calibrated operators; without it (every run whose plans use none of them: the layout is the original one) a
// plan that uses one cannot be encoded (a bug of the caller: choose the layout from the run's plans).
constexpr int kCalibratedFeatures = 10;  // wanda, sparsegpt, pattern_n, pattern_m, gptq, rtn, bits, group_size, sym, act_order
int64_t plan_feature_count(const ModelConfig& config, bool calibrated = false);
std::vector<std::string> plan_feature_names(const ModelConfig& config, bool calibrated = false);
std::vector<float> plan_features(const CompressionPlan& plan, const ModelConfig& config, bool calibrated = false);
// The plan with what has no effect taken out: components of removed layers are emptied and prunes of sparsity 0
// dropped. Equal canonical plans compress a model identically and have equal features.
CompressionPlan canonical_plan(const CompressionPlan& plan);
// Inverse of plan_features: plan_from_features(plan_features(p)) == canonical_plan(p).
CompressionPlan plan_from_features(std::span<const float> features, const ModelConfig& config,
                                   bool calibrated = false);

}  // namespace divprune

#include "compress/plan.hpp"
#include "compress/rounding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/yaml_config.hpp"

namespace divprune {

namespace {

std::string join_names(std::span<const std::string_view> names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + std::string(names[i]);
  return out;
}

// An N:M pattern (keep N of every M consecutive columns): 1 <= N < M, M divides the input dimension and the
// lazy block of 128 columns of sparsegpt (so M is a power of two up to 128).
void check_pattern(int n, int m, int64_t cols, Component c, const std::string& where) {
  if (n < 1 || n >= m)
    throw InputError(fmt::format("{}: pattern {}:{} must keep N of every M entries with 1 <= N < M", where, n, m));
  if (128 % m != 0)
    throw InputError(fmt::format("{}: pattern {}:{}: M must divide 128 (1, 2, 4, ..., 128)", where, n, m));
  if (cols % m != 0)
    throw InputError(fmt::format("{}: pattern {}:{}: M does not divide the input dimension of {} ({})", where, n, m,
                                 component_name(c), cols));
}

// Checks the grid quantizer parameters (gptq, rtn) against a component; `where` prefixes the message.
void check_quant(const ComponentPlan& cp, Component c, const ModelConfig& config, const std::string& where) {
  if (!has_grid(cp.quant)) {
    if (cp.quant_params != QuantParams{})
      throw InputError(fmt::format("{}: bits, group_size, sym and act_order apply to gptq and rtn only", where));
    return;
  }
  const QuantParams& q = cp.quant_params;
  if (q.bits != 2 && q.bits != 3 && q.bits != 4 && q.bits != 8)
    throw InputError(fmt::format("{}: bits {} is not one of 2, 3, 4, 8", where, q.bits));
  const int64_t cols = component_shape(c, config)[1];
  if (q.group_size != -1 && (q.group_size <= 0 || cols % q.group_size != 0))
    throw InputError(fmt::format("{}: group_size {} does not divide the {} input columns of {} (or -1 for one group "
                                 "per row)", where, q.group_size, cols, component_name(c)));
  if (q.act_order && cp.quant != QuantMethod::Gptq)
    throw InputError(fmt::format("{}: act_order applies to gptq only", where));
}

// Checks one prune against the model; `where` prefixes the message (file, key, line).
void check_prune(const PruneSpec& p, Component c, const ModelConfig& config, const std::string& where) {
  const std::string_view method = prune_method_name(p.method);
  if (!std::isfinite(p.sparsity) || p.sparsity < 0.0 || p.sparsity >= 1.0)
    throw InputError(fmt::format("{}: sparsity {} is outside [0, 1)", where, p.sparsity));
  if (!prune_method_applies(p.method, c))
    throw InputError(fmt::format("{}: method {} applies to {} only, not to {}", where, method,
                                 p.method == PruneMethod::Heads ? "q, k, v, o" : "gate, up, down", component_name(c)));
  const auto [rows, cols] = component_shape(c, config);
  (void)rows;
  if (p.pattern_m != 0 || p.pattern_n != 0) {
    if (!is_calibrated(p.method))
      throw InputError(fmt::format("{}: an N:M pattern applies to wanda and sparsegpt only, not to {}", where, method));
    check_pattern(p.pattern_n, p.pattern_m, cols, c, where);
    if (p.sparsity != 1.0 - static_cast<double>(p.pattern_n) / p.pattern_m)
      throw InputError(fmt::format("{}: pattern {}:{} prunes {} of the entries; sparsity {} disagrees", where,
                                   p.pattern_n, p.pattern_m, 1.0 - static_cast<double>(p.pattern_n) / p.pattern_m,
                                   p.sparsity));
  }
  switch (p.method) {
    case PruneMethod::TwoFour:
      if (p.sparsity != 0.5)
        throw InputError(fmt::format("{}: 2:4 always prunes half of the entries; its sparsity must be 0.5 or omitted, "
                                     "found {}", where, p.sparsity));
      if (cols % 4 != 0)
        throw InputError(fmt::format("{}: 2:4 needs the input dimension of {} ({}) to be a multiple of 4", where,
                                     component_name(c), cols));
      break;
    case PruneMethod::Heads: {
      const double heads = p.sparsity * static_cast<double>(config.num_kv_heads);
      if (std::abs(heads - std::nearbyint(heads)) > 1e-6) {
        std::string valid;
        for (int64_t h = 1; h < config.num_kv_heads; ++h)
          valid += fmt::format("{}{}", h > 1 ? ", " : "", static_cast<double>(h) / static_cast<double>(config.num_kv_heads));
        throw InputError(fmt::format("{}: heads sparsity {} prunes {} of the model's {} KV heads; it must prune whole "
                                     "KV heads (sparsity k/{}: {})", where, p.sparsity, heads, config.num_kv_heads,
                                     config.num_kv_heads, valid.empty() ? "none besides 0" : valid));
      }
      break;
    }
    default:
      break;
  }
}

// ---- YAML reading (core/yaml_config.hpp: every error names the file, the key and the line) ----

int64_t layer_index(const ConfigNode& node, int64_t num_layers) {
  const int64_t l = node.as<int64_t>();
  if (l < 0 || l >= num_layers)
    node.fail(fmt::format("layer {} is out of range (the model has {} layers, 0..{})", l, num_layers, num_layers - 1));
  return l;
}

bool is_word(const ConfigNode& node, std::string_view word) { return node.is_scalar() && node.yaml().Scalar() == word; }

std::vector<int64_t> parse_layers(const ConfigNode& node, int64_t num_layers) {
  std::vector<int64_t> layers;
  if (is_word(node, "all")) {
    for (int64_t l = 0; l < num_layers; ++l) layers.push_back(l);
  } else if (node.is_scalar()) {
    layers.push_back(layer_index(node, num_layers));
  } else if (node.is_sequence()) {
    for (const ConfigNode& e : node.elements()) layers.push_back(layer_index(e, num_layers));
  } else {
    node.fail("expected `all` or a list of layer indices");
  }
  return layers;
}

std::vector<Component> parse_names(const ConfigNode& node) {
  std::vector<Component> names;
  if (is_word(node, "all")) {
    names.assign(kAllComponents.begin(), kAllComponents.end());
  } else if (node.is_scalar()) {
    names.push_back(node.as_enum(kComponentNames));
  } else if (node.is_sequence()) {
    for (const ConfigNode& e : node.elements()) names.push_back(e.as_enum(kComponentNames));
  } else {
    node.fail(fmt::format("expected a list of component names ({})", kComponentNames.known()));
  }
  if (names.empty()) node.fail("the list of component names is empty");
  return names;
}

// A prune method / quantization name: the calibrated ones, or the others with the original message for an
// unknown name followed by the calibrated ones.
PruneMethod parse_prune_method(const ConfigNode& node) {
  if (is_word(node, "wanda")) return PruneMethod::Wanda;
  if (is_word(node, "sparsegpt")) return PruneMethod::SparseGpt;
  try {
    return node.as_enum(kUncalibratedPruneMethodNames);
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " or a calibrated one (wanda, sparsegpt)");
  }
}

QuantMethod parse_quant_method(const ConfigNode& node) {
  if (is_word(node, "gptq")) return QuantMethod::Gptq;
  if (is_word(node, "rtn")) return QuantMethod::Rtn;
  try {
    return node.as_enum(kBasicQuantMethodNames);
  } catch (const InputError& e) {
    throw InputError(std::string(e.what()) + " or a grid quantizer (gptq, rtn)");
  }
}

}  // namespace

bool prune_method_applies(PruneMethod method, Component c) {
  switch (method) {
    case PruneMethod::Heads:
      return c == Component::Q || c == Component::K || c == Component::V || c == Component::O;
    case PruneMethod::Channels:
      return c == Component::Gate || c == Component::Up || c == Component::Down;
    default:
      return true;
  }
}

CompressionPlan CompressionPlan::identity(int64_t num_layers) {
  CompressionPlan p;
  p.layers.resize(static_cast<size_t>(num_layers));
  return p;
}

std::vector<int64_t> CompressionPlan::dropped_layers() const {
  std::vector<int64_t> out;
  for (size_t l = 0; l < layers.size(); ++l)
    if (layers[l].removed) out.push_back(static_cast<int64_t>(l));
  return out;
}

bool CompressionPlan::is_identity() const {
  for (const LayerPlan& layer : layers) {
    if (layer.removed) return false;
    for (const ComponentPlan& c : layer.components)
      if (!c.is_identity()) return false;
  }
  return true;
}

bool CompressionPlan::needs_calibration() const {
  for (const LayerPlan& layer : layers) {
    if (layer.removed) continue;
    for (const ComponentPlan& c : layer.components)
      if ((c.prune && c.prune->sparsity > 0.0 && is_calibrated(c.prune->method)) || is_calibrated(c.quant)) return true;
  }
  return false;
}

bool CompressionPlan::uses_calibrated_operators() const {
  for (const LayerPlan& layer : layers)
    for (const ComponentPlan& c : layer.components)
      if ((c.prune && is_calibrated(c.prune->method)) || has_grid(c.quant)) return true;
  return false;
}

// ---- YAML ----

namespace {
// The plan a YAML text describes, before validation.
CompressionPlan read_plan(const std::string& yaml_text, const ModelConfig& config, const std::string& source) {
  const ConfigNode root = ConfigNode::parse(yaml_text, source);
  const int64_t L = config.num_layers;
  CompressionPlan plan = CompressionPlan::identity(L);
  if (!root.present()) return plan;  // an empty file is the identity plan
  if (!root.is_map()) root.fail("a plan is a map with keys drop_layers and components");
  root.check_keys({"drop_layers", "components"});

  if (const ConfigNode drop = root["drop_layers"]; drop.present()) {
    if (!drop.is_sequence()) drop.fail("expected a list of layer indices");
    for (const ConfigNode& d : drop.elements()) plan.layers[static_cast<size_t>(layer_index(d, L))].removed = true;
    if (static_cast<int64_t>(plan.dropped_layers().size()) == L)
      drop.fail(fmt::format("drop_layers removes all {} layers of the model; at least one must remain", L));
  }

  if (const ConfigNode comps = root["components"]; comps.present()) {
    if (!comps.is_sequence()) comps.fail("expected a list of entries {layers, names, prune, quant}");
    for (const ConfigNode& entry : comps.elements()) {
      if (!entry.is_map()) entry.fail("expected a map {layers, names, prune, quant}");
      entry.check_keys({"layers", "names", "prune", "quant"});
      const std::vector<int64_t> layers = parse_layers(entry.required("layers"), L);
      const std::vector<Component> names = parse_names(entry.required("names"));

      // prune: {method, sparsity} or none
      bool set_prune = false;
      std::optional<PruneSpec> prune;
      if (const ConfigNode pn = entry["prune"]; pn.present()) {
        set_prune = true;
        if (is_word(pn, "none")) {
          prune.reset();
        } else if (pn.is_map()) {
          pn.check_keys({"method", "sparsity", "pattern"});
          const ConfigNode method = pn.required("method");
          const ConfigNode sparsity = pn["sparsity"];
          const ConfigNode pattern = pn["pattern"];
          PruneSpec spec;
          spec.method = parse_prune_method(method);
          if (pattern.present()) {
            if (!is_calibrated(spec.method))
              pattern.fail(fmt::format("an N:M pattern applies to wanda and sparsegpt only, not to {}",
                                       prune_method_name(spec.method)));
            if (sparsity.present()) sparsity.fail("give either sparsity or pattern, not both");
            const std::string text = pattern.as<std::string>();
            int n = 0, m = 0;
            char colon = 0, extra = 0;
            if (std::sscanf(text.c_str(), "%d%c%d%c", &n, &colon, &m, &extra) != 3 || colon != ':')
              pattern.fail(fmt::format("expected \"N:M\" (e.g. \"2:4\"), found \"{}\"", text));
            for (Component c : names) check_pattern(n, m, component_shape(c, config)[1], c, pattern.where());
            spec.pattern_n = n;
            spec.pattern_m = m;
            spec.sparsity = 1.0 - static_cast<double>(n) / m;
          } else if (sparsity.present()) {
            spec.sparsity = sparsity.as<double>();
          } else if (spec.method == PruneMethod::TwoFour) {
            spec.sparsity = 0.5;
          } else {
            pn.fail("missing key \"sparsity\" (a fraction in [0, 1))");
          }
          for (Component c : names)
            if (!prune_method_applies(spec.method, c))
              method.fail(fmt::format("method {} applies to {} only, not to {}", prune_method_name(spec.method),
                                      spec.method == PruneMethod::Heads ? "q, k, v, o" : "gate, up, down",
                                      component_name(c)));
          const std::string where = sparsity.present() ? sparsity.where() : pn.where();
          for (Component c : names) check_prune(spec, c, config, where);
          prune = spec;
        } else {
          pn.fail("expected {method: ..., sparsity: ...} or none");
        }
      }
      bool set_quant = false;
      QuantMethod quant = QuantMethod::None;
      QuantParams quant_params{};
      if (const ConfigNode qn = entry["quant"]; qn.present()) {
        set_quant = true;
        if (qn.is_map()) {
          // {method: gptq|rtn, bits, group_size, sym, act_order}
          qn.check_keys({"method", "bits", "group_size", "sym", "act_order"});
          quant = parse_quant_method(qn.required("method"));
          if (!has_grid(quant)) {
            if (qn["bits"].present() || qn["group_size"].present() || qn["sym"].present() || qn["act_order"].present())
              qn.fail(fmt::format("bits, group_size, sym and act_order apply to gptq and rtn only, not to {}",
                                  kQuantMethodNames.name(quant)));
          } else {
            if (const ConfigNode b = qn["bits"]; b.present()) {
              quant_params.bits = b.as<int>();
              if (quant_params.bits != 2 && quant_params.bits != 3 && quant_params.bits != 4 && quant_params.bits != 8)
                b.fail(fmt::format("bits {} is not one of 2, 3, 4, 8", quant_params.bits));
            }
            if (const ConfigNode g = qn["group_size"]; g.present()) {
              quant_params.group_size = g.as<int64_t>();
              for (Component c : names) {
                const int64_t cols = component_shape(c, config)[1];
                if (quant_params.group_size != -1 && (quant_params.group_size <= 0 || cols % quant_params.group_size != 0))
                  g.fail(fmt::format("group_size {} does not divide the {} input columns of {} (or -1 for one group "
                                     "per row)", quant_params.group_size, cols, component_name(c)));
              }
            }
            if (const ConfigNode y = qn["sym"]; y.present()) quant_params.sym = y.as<bool>();
            if (const ConfigNode a = qn["act_order"]; a.present()) {
              quant_params.act_order = a.as<bool>();
              if (quant_params.act_order && quant != QuantMethod::Gptq) a.fail("act_order applies to gptq only");
            }
            for (Component c : names) check_quant(ComponentPlan{std::nullopt, quant, quant_params}, c, config, qn.where());
          }
        } else {
          quant = parse_quant_method(qn);
          // A bare gptq / rtn takes the defaults; they must fit the components too.
          for (Component c : names) check_quant(ComponentPlan{std::nullopt, quant, quant_params}, c, config, qn.where());
        }
      }
      if (!set_prune && !set_quant) entry.fail("the entry sets neither prune nor quant");
      for (int64_t l : layers)
        for (Component c : names) {
          ComponentPlan& cp = plan.at(l, c);
          if (set_prune) cp.prune = prune;
          if (set_quant) {
            cp.quant = quant;
            cp.quant_params = quant_params;
          }
        }
    }
  }
  return plan;
}
}  // namespace

ValidatedPlan parse_plan(const std::string& yaml_text, const ModelConfig& config, const std::string& source, int tp) {
  return validate_plan(read_plan(yaml_text, config, source), config, source, tp);
}

ValidatedPlan load_plan(const std::filesystem::path& file, const ModelConfig& config, int tp) {
  return parse_plan(read_input_file(file, "the plan file"), config, file.string(), tp);
}

std::string plan_to_yaml(const CompressionPlan& plan) {
  const int64_t L = static_cast<int64_t>(plan.layers.size());
  std::string out = "drop_layers: [";
  const auto dropped = plan.dropped_layers();
  for (size_t i = 0; i < dropped.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", dropped[i]);
  out += "]\n";
  // Distinct settings in order of first appearance; for each, the set of components per layer (a bit mask).
  std::vector<ComponentPlan> specs;
  std::vector<std::vector<unsigned>> masks;  // [spec][layer]
  for (int64_t l = 0; l < L; ++l)
    for (Component c : kAllComponents) {
      const ComponentPlan& cp = plan.at(l, c);
      if (!cp.prune && cp.quant == QuantMethod::None) continue;
      size_t s = std::find(specs.begin(), specs.end(), cp) - specs.begin();
      if (s == specs.size()) {
        specs.push_back(cp);
        masks.emplace_back(static_cast<size_t>(L), 0u);
      }
      masks[s][static_cast<size_t>(l)] |= 1u << static_cast<int>(c);
    }
  std::string entries;
  for (size_t s = 0; s < specs.size(); ++s) {
    std::vector<unsigned> seen;
    for (int64_t l0 = 0; l0 < L; ++l0) {
      const unsigned mask = masks[s][static_cast<size_t>(l0)];
      if (mask == 0 || std::find(seen.begin(), seen.end(), mask) != seen.end()) continue;
      seen.push_back(mask);
      std::vector<int64_t> layers;
      for (int64_t l = l0; l < L; ++l)
        if (masks[s][static_cast<size_t>(l)] == mask) layers.push_back(l);
      std::string layer_text;
      if (static_cast<int64_t>(layers.size()) == L) {
        layer_text = "all";
      } else {
        layer_text = "[";
        for (size_t i = 0; i < layers.size(); ++i) layer_text += fmt::format("{}{}", i ? ", " : "", layers[i]);
        layer_text += "]";
      }
      std::vector<std::string_view> names;
      for (Component c : kAllComponents)
        if (mask & (1u << static_cast<int>(c))) names.push_back(component_name(c));
      std::string entry = fmt::format("  - {{layers: {}, names: [{}]", layer_text, join_names(names));
      const ComponentPlan& cp = specs[s];
      if (cp.prune) {
        const std::string_view m = prune_method_name(cp.prune->method);
        // "2:4" is quoted: YAML 1.1 readers (PyYAML) would take a bare 2:4 for the sexagesimal integer 124.
        if (cp.prune->pattern_m != 0)  // calibrated N:M: the pattern says it all
          entry += fmt::format(", prune: {{method: {}, pattern: \"{}:{}\"}}", m, cp.prune->pattern_n,
                               cp.prune->pattern_m);
        else
          entry += fmt::format(", prune: {{method: {}, sparsity: {}}}",
                               cp.prune->method == PruneMethod::TwoFour ? fmt::format("\"{}\"", m) : std::string(m),
                               cp.prune->sparsity);
      }
      if (has_grid(cp.quant)) {
        const QuantParams& q = cp.quant_params;
        entry += fmt::format(", quant: {{method: {}, bits: {}, group_size: {}, sym: {}, act_order: {}}}",
                             kQuantMethodNames.name(cp.quant), q.bits, q.group_size, q.sym, q.act_order);
      } else if (cp.quant != QuantMethod::None) {
        entry += fmt::format(", quant: {}", kQuantMethodNames.name(cp.quant));
      }
      entries += entry + "}\n";
    }
  }
  out += entries.empty() ? "components: []\n" : "components:\n" + entries;
  return out;
}

void save_plan(const CompressionPlan& plan, const std::filesystem::path& file) {
  std::ofstream out(file);
  if (!out) throw InputError(fmt::format("{}: cannot write the plan file", file.string()));
  out << plan_to_yaml(plan);
  if (!out) throw InputError(fmt::format("{}: writing the plan failed", file.string()));
}

namespace {

// What depends on the tensor-parallel cut: 2:4 groups on row-parallel o/down must not straddle shards, so
// their local column count must be a multiple of 4.
void check_two_four_shards(const CompressionPlan& plan, const ModelConfig& config, const ShardLayout& layout,
                           const std::string& source) {
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (plan.layers[static_cast<size_t>(l)].removed) continue;
    for (Component c : {Component::O, Component::Down}) {
      const ComponentPlan& cp = plan.at(l, c);
      if (!cp.prune || cp.prune->method != PruneMethod::TwoFour) continue;
      const int64_t local = c == Component::O ? layout.q_rows.size() : layout.ffn_rows.size();
      if (local % 4 != 0)
        throw InputError(fmt::format("{}: layer {} {}: 2:4 groups of 4 input columns would straddle tensor-parallel "
                                     "shards: tp {} leaves {} columns per shard, not a multiple of 4",
                                     source, l, component_name(c), layout.shard.size, local));
    }
  }
}

}  // namespace

ValidatedPlan validate_plan(CompressionPlan plan, const ModelConfig& config, const std::string& source, int tp) {
  const int64_t L = config.num_layers;
  if (static_cast<int64_t>(plan.layers.size()) != L)
    throw InputError(fmt::format("{}: the plan describes {} layers, the model ({}) has {}", source, plan.layers.size(),
                                 config.source, L));
  if (static_cast<int64_t>(plan.dropped_layers().size()) == L)
    throw InputError(fmt::format("{}: drop_layers removes all {} layers of the model; at least one must remain", source, L));
  for (int64_t l = 0; l < L; ++l)
    for (Component c : kAllComponents) {
      const ComponentPlan& cp = plan.at(l, c);
      if (cp.prune) check_prune(*cp.prune, c, config, fmt::format("{}: layer {} {}", source, l, component_name(c)));
      check_quant(cp, c, config, fmt::format("{}: layer {} {}", source, l, component_name(c)));
    }
  EXPECTS(tp >= 1, "a tensor-parallel size is at least 1");
  if (tp > 1) check_two_four_shards(plan, config, make_shard_layout(config, TpShard{0, tp}), source);
  return ValidatedPlan(std::move(plan), tp);
}

// ---- Counting ----

int64_t pruned_kv_heads(double sparsity, const ModelConfig& config) {
  return round_count(sparsity * static_cast<double>(config.num_kv_heads));
}

int64_t pruned_channels(double sparsity, const ModelConfig& config) {
  return round_count(sparsity * static_cast<double>(config.intermediate_size));
}

std::array<int64_t, 2> component_shape(Component c, const ModelConfig& config) {
  const int64_t C = config.hidden_size, F = config.intermediate_size, q = config.num_heads * config.head_dim,
                kv = config.num_kv_heads * config.head_dim;
  switch (c) {
    case Component::Q: return {q, C};
    case Component::K:
    case Component::V: return {kv, C};
    case Component::O: return {C, q};
    case Component::Gate:
    case Component::Up: return {F, C};
    case Component::Down: return {C, F};
  }
  return {0, 0};
}

int64_t pruned_entries(const PruneSpec& p, Component c, const ModelConfig& config) {
  const auto [rows, cols] = component_shape(c, config);
  const int64_t n = rows * cols;
  switch (p.method) {
    case PruneMethod::Magnitude: return std::min(n, round_count(p.sparsity * static_cast<double>(n)));
    case PruneMethod::MagnitudeRow: return rows * std::min(cols, round_count(p.sparsity * static_cast<double>(cols)));
    case PruneMethod::TwoFour: return n / 2;
    case PruneMethod::Heads: {
      const int64_t heads = pruned_kv_heads(p.sparsity, config);
      const int64_t group = config.num_heads / config.num_kv_heads;  // query heads per KV head
      const int64_t width = (c == Component::K || c == Component::V ? 1 : group) * heads * config.head_dim;
      return width * config.hidden_size;
    }
    case PruneMethod::Channels: return pruned_channels(p.sparsity, config) * config.hidden_size;
    case PruneMethod::Wanda:
    case PruneMethod::SparseGpt:
      // Per output row: round(s·in) (unstructured; sparsegpt rounds per block of 128, equal when 128 | in) or
      // (M−N)/M of every row (N:M).
      if (p.pattern_m != 0) return rows * (cols / p.pattern_m) * (p.pattern_m - p.pattern_n);
      return rows * std::min(cols, round_count(p.sparsity * static_cast<double>(cols)));
  }
  return 0;
}

PlanSize plan_size(const CompressionPlan& plan, const ModelConfig& config) {
  PlanSize s;
  s.linear_parameters = config.num_layers * config.layer_linear_parameters();
  int64_t removed_norms = 0;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    if (plan.layers[static_cast<size_t>(l)].removed) {
      removed_norms += 2 * config.hidden_size;
      continue;
    }
    for (Component c : kAllComponents) {
      const auto [rows, cols] = component_shape(c, config);
      const ComponentPlan& cp = plan.at(l, c);
      const int64_t kept = rows * cols - (cp.prune ? pruned_entries(*cp.prune, c, config) : 0);
      s.linear_kept += kept;
      if (cp.quant == QuantMethod::Int8) s.linear_int8 += kept;
      if (has_grid(cp.quant))  // packed at `bits` per entry (group scales not counted)
        s.linear_bytes += (kept * cp.quant_params.bits + 7) / 8;
      else
        s.linear_bytes += kept * (cp.quant == QuantMethod::Int8 ? 1 : 2);
    }
  }
  s.parameters = config.parameter_count() - (s.linear_parameters - s.linear_kept) - removed_norms;
  s.sparsity = s.linear_parameters > 0
                   ? 1.0 - static_cast<double>(s.linear_kept) / static_cast<double>(s.linear_parameters)
                   : 0.0;
  return s;
}

// ---- Features ----

int64_t plan_feature_count(const ModelConfig& config, bool calibrated) {
  return config.num_layers * (kFeaturesPerLayer + (calibrated ? kNumComponents * kCalibratedFeatures : 0));
}

std::vector<std::string> plan_feature_names(const ModelConfig& config, bool calibrated) {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(plan_feature_count(config, calibrated)));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    for (Component c : kAllComponents) {
      const std::string_view cn = component_name(c);
      names.push_back(fmt::format("layer{}.{}.sparsity", l, cn));
      for (PruneMethod m : kAllPruneMethods) names.push_back(fmt::format("layer{}.{}.{}", l, cn, prune_method_name(m)));
      names.push_back(fmt::format("layer{}.{}.int8", l, cn));
    }
    names.push_back(fmt::format("layer{}.removed", l));
  }
  if (calibrated)
    for (int64_t l = 0; l < config.num_layers; ++l)
      for (Component c : kAllComponents)
        for (const char* field : {"wanda", "sparsegpt", "pattern_n", "pattern_m", "gptq", "rtn", "bits", "group_size",
                                  "sym", "act_order"})
          names.push_back(fmt::format("layer{}.{}.{}", l, component_name(c), field));
  return names;
}

CompressionPlan canonical_plan(const CompressionPlan& plan) {
  CompressionPlan out = plan;
  for (LayerPlan& layer : out.layers) {
    if (layer.removed) {
      layer.components = {};
      continue;
    }
    for (ComponentPlan& c : layer.components)
      if (c.prune && c.prune->sparsity == 0.0) c.prune.reset();
  }
  return out;
}

std::vector<float> plan_features(const CompressionPlan& plan, const ModelConfig& config, bool calibrated) {
  EXPECTS(static_cast<int64_t>(plan.layers.size()) == config.num_layers, "plan and model disagree on the layer count");
  const CompressionPlan canon = canonical_plan(plan);
  EXPECTS(calibrated || !canon.uses_calibrated_operators(),
          "a plan with calibrated operators needs the calibrated feature layout");
  std::vector<float> f(static_cast<size_t>(plan_feature_count(config, calibrated)), 0.0f);
  float* tail = f.data() + config.num_layers * kFeaturesPerLayer;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    float* block = f.data() + l * kFeaturesPerLayer;
    const LayerPlan& layer = canon.layers[static_cast<size_t>(l)];
    for (Component c : kAllComponents) {
      float* cf = block + static_cast<int>(c) * kFeaturesPerComponent;
      const ComponentPlan& cp = layer.components[static_cast<int>(c)];
      if (cp.prune) {
        cf[0] = static_cast<float>(cp.prune->sparsity);
        if (!is_calibrated(cp.prune->method)) cf[1 + static_cast<int>(cp.prune->method)] = 1.0f;
      }
      cf[1 + kNumPruneMethods] = cp.quant == QuantMethod::Int8 ? 1.0f : 0.0f;
      if (calibrated) {
        float* t = tail + (l * kNumComponents + static_cast<int>(c)) * kCalibratedFeatures;
        if (cp.prune) {
          t[0] = cp.prune->method == PruneMethod::Wanda ? 1.0f : 0.0f;
          t[1] = cp.prune->method == PruneMethod::SparseGpt ? 1.0f : 0.0f;
          t[2] = static_cast<float>(cp.prune->pattern_n);
          t[3] = static_cast<float>(cp.prune->pattern_m);
        }
        if (has_grid(cp.quant)) {
          t[4] = cp.quant == QuantMethod::Gptq ? 1.0f : 0.0f;
          t[5] = cp.quant == QuantMethod::Rtn ? 1.0f : 0.0f;
          t[6] = static_cast<float>(cp.quant_params.bits);
          t[7] = static_cast<float>(cp.quant_params.group_size);
          t[8] = cp.quant_params.sym ? 1.0f : 0.0f;
          t[9] = cp.quant_params.act_order ? 1.0f : 0.0f;
        }
      }
    }
    block[kFeaturesPerLayer - 1] = layer.removed ? 1.0f : 0.0f;
  }
  return f;
}

CompressionPlan plan_from_features(std::span<const float> f, const ModelConfig& config, bool calibrated) {
  if (static_cast<int64_t>(f.size()) != plan_feature_count(config, calibrated))
    throw InputError(fmt::format("a plan feature vector for {} layers has {} values, found {}", config.num_layers,
                                 plan_feature_count(config, calibrated), f.size()));
  const float* tail = f.data() + config.num_layers * kFeaturesPerLayer;
  CompressionPlan plan = CompressionPlan::identity(config.num_layers);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    const float* block = f.data() + l * kFeaturesPerLayer;
    LayerPlan& layer = plan.layers[static_cast<size_t>(l)];
    layer.removed = block[kFeaturesPerLayer - 1] > 0.5f;
    if (layer.removed) continue;
    for (Component c : kAllComponents) {
      const float* cf = block + static_cast<int>(c) * kFeaturesPerComponent;
      ComponentPlan& cp = layer.components[static_cast<int>(c)];
      int method = -1;
      for (int m = 0; m < kNumPruneMethods; ++m)
        if (cf[1 + m] > 0.5f) method = m;
      // The sparsity feature is a float: recover the double the plan would have been written with.
      const float* t = calibrated ? tail + (l * kNumComponents + static_cast<int>(c)) * kCalibratedFeatures : nullptr;
      if (t && t[0] > 0.5f) method = static_cast<int>(PruneMethod::Wanda);
      if (t && t[1] > 0.5f) method = static_cast<int>(PruneMethod::SparseGpt);
      if (method >= 0 && cf[0] > 0.0f) {
        cp.prune = PruneSpec{static_cast<PruneMethod>(method), std::stod(fmt::format("{}", cf[0]))};
        if (t) {
          cp.prune->pattern_n = static_cast<int>(t[2]);
          cp.prune->pattern_m = static_cast<int>(t[3]);
        }
      }
      cp.quant = cf[1 + kNumPruneMethods] > 0.5f ? QuantMethod::Int8 : QuantMethod::None;
      if (t && (t[4] > 0.5f || t[5] > 0.5f)) {
        cp.quant = t[4] > 0.5f ? QuantMethod::Gptq : QuantMethod::Rtn;
        cp.quant_params = QuantParams{static_cast<int>(t[6]), static_cast<int64_t>(t[7]), t[8] > 0.5f, t[9] > 0.5f};
      }
    }
  }
  return plan;
}

}  // namespace divprune

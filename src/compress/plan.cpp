#include "compress/plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/yaml_config.hpp"

namespace divprune {

namespace {

// round() of the plan format: half to even, like Python's round().
int64_t round_count(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

std::string join_names(std::span<const std::string_view> names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + std::string(names[i]);
  return out;
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
          pn.check_keys({"method", "sparsity"});
          const ConfigNode method = pn.required("method");
          const ConfigNode sparsity = pn["sparsity"];
          PruneSpec spec;
          spec.method = method.as_enum(kPruneMethodNames);
          if (sparsity.present()) {
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
      if (const ConfigNode qn = entry["quant"]; qn.present()) {
        set_quant = true;
        quant = qn.as_enum(kQuantMethodNames);
      }
      if (!set_prune && !set_quant) entry.fail("the entry sets neither prune nor quant");
      for (int64_t l : layers)
        for (Component c : names) {
          ComponentPlan& cp = plan.at(l, c);
          if (set_prune) cp.prune = prune;
          if (set_quant) cp.quant = quant;
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
        entry += fmt::format(", prune: {{method: {}, sparsity: {}}}",
                             cp.prune->method == PruneMethod::TwoFour ? fmt::format("\"{}\"", m) : std::string(m),
                             cp.prune->sparsity);
      }
      if (cp.quant != QuantMethod::None) entry += fmt::format(", quant: {}", kQuantMethodNames.name(cp.quant));
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

int64_t plan_feature_count(const ModelConfig& config) { return config.num_layers * kFeaturesPerLayer; }

std::vector<std::string> plan_feature_names(const ModelConfig& config) {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(plan_feature_count(config)));
  for (int64_t l = 0; l < config.num_layers; ++l) {
    for (Component c : kAllComponents) {
      const std::string_view cn = component_name(c);
      names.push_back(fmt::format("layer{}.{}.sparsity", l, cn));
      for (PruneMethod m : kAllPruneMethods) names.push_back(fmt::format("layer{}.{}.{}", l, cn, prune_method_name(m)));
      names.push_back(fmt::format("layer{}.{}.int8", l, cn));
    }
    names.push_back(fmt::format("layer{}.removed", l));
  }
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

std::vector<float> plan_features(const CompressionPlan& plan, const ModelConfig& config) {
  EXPECTS(static_cast<int64_t>(plan.layers.size()) == config.num_layers, "plan and model disagree on the layer count");
  const CompressionPlan canon = canonical_plan(plan);
  std::vector<float> f(static_cast<size_t>(plan_feature_count(config)), 0.0f);
  for (int64_t l = 0; l < config.num_layers; ++l) {
    float* block = f.data() + l * kFeaturesPerLayer;
    const LayerPlan& layer = canon.layers[static_cast<size_t>(l)];
    for (Component c : kAllComponents) {
      float* cf = block + static_cast<int>(c) * kFeaturesPerComponent;
      const ComponentPlan& cp = layer.components[static_cast<int>(c)];
      if (cp.prune) {
        cf[0] = static_cast<float>(cp.prune->sparsity);
        cf[1 + static_cast<int>(cp.prune->method)] = 1.0f;
      }
      cf[1 + kNumPruneMethods] = cp.quant == QuantMethod::Int8 ? 1.0f : 0.0f;
    }
    block[kFeaturesPerLayer - 1] = layer.removed ? 1.0f : 0.0f;
  }
  return f;
}

CompressionPlan plan_from_features(std::span<const float> f, const ModelConfig& config) {
  if (static_cast<int64_t>(f.size()) != plan_feature_count(config))
    throw InputError(fmt::format("a plan feature vector for {} layers has {} values, found {}", config.num_layers,
                                 plan_feature_count(config), f.size()));
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
      if (method >= 0 && cf[0] > 0.0f)
        cp.prune = PruneSpec{static_cast<PruneMethod>(method), std::stod(fmt::format("{}", cf[0]))};
      cp.quant = cf[1 + kNumPruneMethods] > 0.5f ? QuantMethod::Int8 : QuantMethod::None;
    }
  }
  return plan;
}

}  // namespace divprune

#pragma once
// Reading one section of the run configuration (`space`, `sample`, `sensitivity`, ...) with errors that name the
// file, the dotted key and the line: what the stages that own a section share (pipelines/search_common.cpp,
// pipelines/sensitivity.cpp). The top-level keys and the `data`/`evaluate` sections are read by run_config.cpp.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>

#include "core/errors.hpp"
#include "pipelines/run_config.hpp"

namespace divprune {

// "config.yaml: space.budget (line 12)" (the line when the node has one).
inline std::string config_where(const RunConfig& c, const YAML::Node& node, const std::string& key) {
  if (node && node.Mark().line >= 0) return fmt::format("{}: {} (line {})", c.file.string(), key, node.Mark().line + 1);
  return fmt::format("{}: {}", c.file.string(), key);
}

// Throws InputError for a key of the mapping `node` (at dotted `key`) that is not in `allowed`. An absent node
// is accepted.
inline void check_section_keys(const RunConfig& c, const YAML::Node& node, const std::string& key,
                               const std::set<std::string>& allowed) {
  if (!node) return;
  if (!node.IsMap()) throw InputError(fmt::format("{}: expected a mapping", config_where(c, node, key)));
  for (const auto& kv : node) {
    const std::string name = kv.first.as<std::string>();
    if (!allowed.count(name)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw InputError(
          fmt::format("{}: unknown key \"{}\" (known: {})", config_where(c, kv.first, key + "." + name), name, list));
    }
  }
}

// parent[name] as T, or `fallback` when the section or the key is absent or null.
template <typename T>
T section_value(const RunConfig& c, const YAML::Node& parent, const std::string& name, const std::string& key,
                T fallback) {
  if (!parent) return fallback;
  const YAML::Node node = parent[name];
  if (!node || node.IsNull()) return fallback;
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    throw InputError(fmt::format("{}: cannot read \"{}\"", config_where(c, node, key + "." + name), YAML::Dump(node)));
  }
}

}  // namespace divprune

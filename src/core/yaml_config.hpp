#pragma once
// The one reader of YAML input (the run configuration, compression plans). A ConfigNode is a yaml-cpp node that
// knows the source it was read from and its dotted key path ("data.perplexity.ctx", "components[0].prune"), so
// every error it raises is an InputError of the one format
//
//   SOURCE: dotted.key (line N): message
//
// (the line when the node has one; "SOURCE: message" for the root). What it checks for every caller:
//  - a mapping's keys against the allowed set (check_keys), naming the offending key, its line and the known keys;
//  - duplicate keys in any mapping, with both lines (yaml-cpp would keep the first silently);
//  - typed values: integers are whole decimal numbers in the range of the target type (64.9 and 1e3 are not
//    integers; yaml-cpp would also read 010 as octal 8), numbers, true/false, strings, paths, lists, enum names.
// Absent and null (`key: ~`) values are the same: a getter with a fallback returns it, one without fails.
#include <yaml-cpp/yaml.h>

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/enum_names.hpp"

namespace divprune {

class ConfigNode {
 public:
  // Parses `text`; `source` names it in every message (a file, or "evaluate.plans[2]"). Relative paths read by
  // as_path() resolve against `base_dir` (default: the directory of `source`). Throws InputError for invalid
  // YAML ("SOURCE: not valid YAML: ...") and for duplicate keys.
  static ConfigNode parse(const std::string& text, const std::string& source, std::filesystem::path base_dir = {});
  // Wraps a tree built or changed in code (e.g. after --set overrides); checks duplicate keys like parse().
  static ConfigNode wrap(YAML::Node root, const std::string& source, std::filesystem::path base_dir = {});
  // An absent node of an empty source (for default-constructed holders).
  ConfigNode() : node_(YAML::NodeType::Undefined), context_(std::make_shared<const Context>()) {}
  ConfigNode(const ConfigNode&) = default;
  ConfigNode(ConfigNode&&) = default;
  // yaml-cpp's Node assignment rebinds the node the handle refers to, changing the tree; these rebuild the
  // handle instead, so assigning a ConfigNode never modifies the configuration.
  ConfigNode& operator=(const ConfigNode& other);
  ConfigNode& operator=(ConfigNode&& other) { return *this = static_cast<const ConfigNode&>(other); }

  // The same node, with `${name}` inside paths read below it replaced by `value` (see as_path).
  ConfigNode with_variable(const std::string& name, const std::string& value) const;

  const YAML::Node& yaml() const { return node_; }
  const std::string& source() const;
  const std::string& key() const { return key_; }  // "" at the root
  bool present() const { return node_.IsDefined() && !node_.IsNull(); }
  bool is_map() const { return node_.IsDefined() && node_.IsMap(); }
  bool is_sequence() const { return node_.IsDefined() && node_.IsSequence(); }
  bool is_scalar() const { return node_.IsDefined() && node_.IsScalar(); }
  size_t size() const { return is_map() || is_sequence() ? node_.size() : 0; }
  int64_t line() const;  // 1-based; 0 when the node has no position (absent, or built in code)

  // "SOURCE: key (line N)", "SOURCE: key" without a position, "SOURCE" for the root.
  std::string where() const;
  // Throws InputError "where(): message".
  [[noreturn]] void fail(std::string_view message) const;

  // A child of a mapping ("key.name"): absent when this node is absent or null or lacks the key; fails when this
  // node is present but not a mapping.
  ConfigNode operator[](std::string_view name) const;
  // An element of a sequence ("key[i]"); absent past the end.
  ConfigNode operator[](size_t index) const;
  // The elements of a sequence (none when absent; fails for a scalar or mapping).
  std::vector<ConfigNode> elements() const;

  // Fails unless this node is absent, null or a mapping whose keys are all in `allowed`:
  // "SOURCE: key.bad (line N): unknown key \"bad\" (known: a, b, c)". Returns *this.
  const ConfigNode& check_keys(std::initializer_list<std::string_view> allowed) const;
  // Fails unless this node is a mapping: "SOURCE: key (line N): expected a mapping (what)".
  const ConfigNode& require_map(std::string_view what = "") const;

  // This node's value; fails naming the key and the value found. T: std::string, bool, double, an integer type
  // (range-checked), std::vector of those.
  template <typename T>
  T as() const;
  // A path: `${name}` replaced by a variable (with_variable; unknown: fails), relative resolved against the base
  // directory. An empty string gives an empty path.
  std::filesystem::path as_path() const;
  template <typename E, size_t N>
  E as_enum(const EnumNames<E, N>& names) const {
    return names.parse(as<std::string>(), where());
  }

  // A child's value; the child must be present ("missing key \"name\"" otherwise).
  template <typename T>
  T get(std::string_view name) const {
    return required(name).template as<T>();
  }
  // A child's value, or `fallback` when the child is absent or null.
  template <typename T>
  T get(std::string_view name, T fallback) const {
    const ConfigNode child = (*this)[name];
    return child.present() ? child.template as<T>() : fallback;
  }
  std::filesystem::path get_path(std::string_view name) const { return (*this)[name].as_path(); }
  template <typename E, size_t N>
  E get_enum(std::string_view name, const EnumNames<E, N>& names, E fallback) const {
    const ConfigNode child = (*this)[name];
    return child.present() ? child.as_enum(names) : fallback;
  }
  // The child, failing with "missing key \"name\"" (at this node) when it is absent or null.
  ConfigNode required(std::string_view name) const;

 private:
  struct Context {
    std::string source;
    std::filesystem::path base_dir;
    std::map<std::string, std::string> variables;
  };
  ConfigNode(YAML::Node node, std::shared_ptr<const Context> context, std::string key)
      : node_(std::move(node)), context_(std::move(context)), key_(std::move(key)) {}

  std::string scalar_for(std::string_view expected) const;  // the scalar text, or fail "expected ..., found ..."
  int64_t as_int64_in(int64_t min, int64_t max) const;
  uint64_t as_uint64() const;

  YAML::Node node_;
  std::shared_ptr<const Context> context_;
  std::string key_;
};

namespace detail {
template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};
}  // namespace detail

template <>
std::string ConfigNode::as<std::string>() const;
template <>
bool ConfigNode::as<bool>() const;
template <>
double ConfigNode::as<double>() const;

template <typename T>
T ConfigNode::as() const {
  if constexpr (detail::IsVector<T>::value) {
    T out;
    for (const ConfigNode& e : elements()) out.push_back(e.template as<typename T::value_type>());
    return out;
  } else if constexpr (std::same_as<T, uint64_t>) {
    return as_uint64();
  } else if constexpr (std::integral<T> && std::is_signed_v<T>) {
    return static_cast<T>(as_int64_in(std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  } else if constexpr (std::integral<T>) {
    static_assert(sizeof(T) < sizeof(int64_t), "unsigned 64-bit integers go through as_uint64");
    return static_cast<T>(as_int64_in(0, std::numeric_limits<T>::max()));
  } else {
    static_assert(sizeof(T) == 0, "ConfigNode::as<T>: unsupported type");
  }
}

}  // namespace divprune

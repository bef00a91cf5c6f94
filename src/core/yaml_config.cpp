#include "core/yaml_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <memory>

#include "core/errors.hpp"

namespace divprune {

namespace {

std::string child_key(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

}  // namespace

ConfigNode ConfigNode::parse(const std::string& text, const std::string& source, std::filesystem::path base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: not valid YAML: {}", source, e.what()));
  }
  return wrap(root, source, std::move(base_dir));
}

ConfigNode ConfigNode::wrap(YAML::Node root, const std::string& source, std::filesystem::path base_dir) {
  auto context = std::make_shared<Context>();
  context->source = source;
  if (base_dir.empty()) {
    const std::filesystem::path file(source);
    base_dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  }
  context->base_dir = std::move(base_dir);
  ConfigNode node(std::move(root), std::move(context), "");
  // Duplicate keys anywhere in the tree: yaml-cpp keeps every pair but lookups see only the first.
  auto walk = [](const auto& self, const ConfigNode& n) -> void {
    if (n.is_sequence()) {
      for (size_t i = 0; i < n.node_.size(); ++i) self(self, n[i]);
    } else if (n.is_map()) {
      std::map<std::string, int64_t> first_line;
      for (const auto& kv : n.node_) {
        const ConfigNode key_node(kv.first, n.context_, n.key_);
        if (!kv.first.IsScalar()) key_node.fail("a key must be a name, not a list or mapping");
        const std::string name = kv.first.Scalar();
        const ConfigNode key_at(kv.first, n.context_, child_key(n.key_, name));
        const auto [it, inserted] = first_line.emplace(name, key_at.line());
        if (!inserted) key_at.fail(fmt::format("duplicate key \"{}\" (first at line {})", name, it->second));
        self(self, ConfigNode(kv.second, n.context_, child_key(n.key_, name)));
      }
    }
  };
  walk(walk, node);
  return node;
}

ConfigNode ConfigNode::with_variable(const std::string& name, const std::string& value) const {
  auto context = std::make_shared<Context>(*context_);
  context->variables[name] = value;
  return ConfigNode(node_, std::move(context), key_);
}

ConfigNode& ConfigNode::operator=(const ConfigNode& other) {
  if (this == &other) return *this;
  std::destroy_at(&node_);
  std::construct_at(&node_, other.node_);
  context_ = other.context_;
  key_ = other.key_;
  return *this;
}

const std::string& ConfigNode::source() const { return context_->source; }

int64_t ConfigNode::line() const {
  if (!node_.IsDefined()) return 0;
  const int line = node_.Mark().line;
  return line >= 0 ? line + 1 : 0;
}

std::string ConfigNode::where() const {
  if (key_.empty()) return context_->source;
  if (line() > 0) return fmt::format("{}: {} (line {})", context_->source, key_, line());
  return fmt::format("{}: {}", context_->source, key_);
}

void ConfigNode::fail(std::string_view message) const { throw InputError(fmt::format("{}: {}", where(), message)); }

ConfigNode ConfigNode::operator[](std::string_view name) const {
  const std::string key = child_key(key_, name);
  if (!present()) return ConfigNode(YAML::Node(YAML::NodeType::Undefined), context_, key);
  if (!node_.IsMap()) require_map();
  const YAML::Node& map = node_;
  return ConfigNode(map[std::string(name)], context_, key);
}

ConfigNode ConfigNode::operator[](size_t index) const {
  const std::string key = fmt::format("{}[{}]", key_, index);
  if (!is_sequence() || index >= node_.size()) return ConfigNode(YAML::Node(YAML::NodeType::Undefined), context_, key);
  const YAML::Node& seq = node_;
  return ConfigNode(seq[index], context_, key);
}

std::vector<ConfigNode> ConfigNode::elements() const {
  std::vector<ConfigNode> out;
  if (!present()) return out;
  if (node_.IsScalar()) fail(fmt::format("expected a list, found \"{}\"", node_.Scalar()));
  if (!node_.IsSequence()) fail("expected a list, found a mapping");
  for (size_t i = 0; i < node_.size(); ++i) out.push_back((*this)[i]);
  return out;
}

const ConfigNode& ConfigNode::check_keys(std::initializer_list<std::string_view> allowed) const {
  if (!present()) return *this;
  require_map();
  for (const auto& kv : node_) {
    const std::string name = kv.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
    std::string known;
    for (std::string_view a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
    ConfigNode(kv.first, context_, child_key(key_, name))
        .fail(fmt::format("unknown key \"{}\" (known: {})", name, known));
  }
  return *this;
}

const ConfigNode& ConfigNode::require_map(std::string_view what) const {
  if (is_map()) return *this;
  fail(what.empty() ? std::string("expected a mapping") : fmt::format("expected a mapping ({})", what));
}

ConfigNode ConfigNode::required(std::string_view name) const {
  ConfigNode child = (*this)[name];
  if (!child.present()) fail(fmt::format("missing key \"{}\"", name));
  return child;
}

std::string ConfigNode::scalar_for(std::string_view expected) const {
  if (is_scalar() && !node_.IsNull()) return node_.Scalar();
  const char* found = !present() ? "nothing" : node_.IsSequence() ? "a list" : "a mapping";
  fail(fmt::format("expected {}, found {}", expected, found));
}

template <>
std::string ConfigNode::as<std::string>() const {
  return scalar_for("a string");
}

template <>
bool ConfigNode::as<bool>() const {
  const std::string text = scalar_for("true or false");
  try {
    return node_.as<bool>();
  } catch (const YAML::Exception&) {
    fail(fmt::format("expected true or false, found \"{}\"", text));
  }
}

template <>
double ConfigNode::as<double>() const {
  const std::string text = scalar_for("a number");
  try {
    return node_.as<double>();
  } catch (const YAML::Exception&) {
    fail(fmt::format("expected a number, found \"{}\"", text));
  }
}

int64_t ConfigNode::as_int64_in(int64_t min, int64_t max) const {
  const std::string text = scalar_for("an integer");
  const char* begin = text.data() + (text.starts_with('+') ? 1 : 0);
  const char* end = text.data() + text.size();
  int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::invalid_argument || ptr != end) fail(fmt::format("expected an integer, found \"{}\"", text));
  if (ec == std::errc::result_out_of_range || value < min || value > max)
    fail(fmt::format("{} is out of range [{}, {}]", text, min, max));
  return value;
}

uint64_t ConfigNode::as_uint64() const {
  const std::string text = scalar_for("a non-negative integer");
  const char* begin = text.data() + (text.starts_with('+') ? 1 : 0);
  const char* end = text.data() + text.size();
  uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec == std::errc::invalid_argument || ptr != end || text.starts_with('-'))
    fail(fmt::format("expected a non-negative integer, found \"{}\"", text));
  if (ec == std::errc::result_out_of_range)
    fail(fmt::format("{} is out of range [0, {}]", text, std::numeric_limits<uint64_t>::max()));
  return value;
}

std::filesystem::path ConfigNode::as_path() const {
  if (!present()) return {};
  std::string value = as<std::string>();
  for (size_t at = value.find("${"); at != std::string::npos; at = value.find("${", at)) {
    const size_t close = value.find('}', at);
    if (close == std::string::npos) break;
    const std::string name = value.substr(at + 2, close - at - 2);
    const auto it = context_->variables.find(name);
    if (it == context_->variables.end())
      fail(fmt::format("uses ${{{}}} but the configuration sets no `{}`", name, name));
    value.replace(at, close + 1 - at, it->second);
    at += it->second.size();
  }
  if (value.empty()) return {};
  const std::filesystem::path p(value);
  return p.is_absolute() ? p : (context_->base_dir / p).lexically_normal();
}

}  // namespace divprune

#include "pipelines/run_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "core/errors.hpp"

namespace divprune {

namespace {

// Top-level sections. A stage that needs configuration adds its section here and documents it in
// configs/README.md.
const std::set<std::string> kTopLevel = {"assets", "model", "tokenizer", "archive", "stages", "data", "evaluate",
                                           "space", "sample", "train", "search",   // pipelines/search_common.hpp
                                           "sensitivity"};                         // pipelines/sensitivity.cpp

struct Reader {
  std::string file;

  std::string where(const YAML::Node& node, const std::string& key) const {
    if (node.Mark().line >= 0) return fmt::format("{}: {} (line {})", file, key, node.Mark().line + 1);
    return fmt::format("{}: {}", file, key);
  }

  void check_keys(const YAML::Node& node, const std::string& key, const std::set<std::string>& allowed) const {
    if (!node) return;
    if (!node.IsMap()) throw InputError(fmt::format("{}: expected a mapping", where(node, key)));
    for (const auto& kv : node) {
      const std::string name = kv.first.as<std::string>();
      if (allowed.count(name) == 0) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        throw InputError(fmt::format("{}: unknown key \"{}\" (known: {})", where(kv.first, key.empty() ? name : key + "." + name),
                                     name, list));
      }
    }
  }

  template <typename T>
  T get(const YAML::Node& parent, const std::string& name, const std::string& key, T fallback) const {
    const YAML::Node node = parent ? parent[name] : YAML::Node();
    if (!node || node.IsNull()) return fallback;
    try {
      return node.as<T>();
    } catch (const YAML::Exception&) {
      throw InputError(fmt::format("{}: cannot read \"{}\" as {}", where(node, key), YAML::Dump(node),
                                   std::is_same_v<T, std::string> ? "a string"
                                   : std::is_same_v<T, bool>      ? "true/false"
                                                                  : "a number"));
    }
  }
};

std::string substitute_assets(std::string value, const std::string& assets) {
  const std::string token = "${assets}";
  for (size_t at = value.find(token); at != std::string::npos; at = value.find(token, at + assets.size()))
    value.replace(at, token.size(), assets);
  return value;
}

}  // namespace

namespace {

// yaml-cpp nodes are handles whose assignment rebinds the *referenced* node: never reassign a walking
// variable; recurse with fresh (copy-constructed) handles instead.
void set_path(YAML::Node node, const std::vector<std::string>& parts, size_t i, const YAML::Node& value,
              const std::string& key, const std::string& where) {
  const std::string& part = parts[i];
  const bool index = std::all_of(part.begin(), part.end(), ::isdigit) && node.IsSequence();
  const size_t k = index ? std::stoul(part) : 0;
  if (index && (i + 1 == parts.size() ? k > node.size() : k >= node.size()))
    throw InputError(fmt::format("{}: index {} past the end of \"{}\"", where, k, key));
  if (!index && node.IsDefined() && !node.IsNull() && !node.IsMap())
    throw InputError(fmt::format("{}: \"{}\" is not inside a section", where, key));
  if (i + 1 == parts.size()) {
    if (index && k == node.size()) node.push_back(value);
    else if (index) node[k] = value;
    else node[part] = value;
    return;
  }
  if (index) {
    set_path(node[k], parts, i + 1, value, key, where);
    return;
  }
  const YAML::Node child = node[part];
  if (!child.IsDefined() || child.IsNull()) node[part] = YAML::Node(YAML::NodeType::Map);
  set_path(node[part], parts, i + 1, value, key, where);
}

}  // namespace

void set_dotted(YAML::Node& root, const std::string& key, const YAML::Node& value, const std::string& where) {
  std::vector<std::string> parts;
  std::stringstream in(key);
  std::string part;
  while (std::getline(in, part, '.')) {
    if (part.empty()) throw InputError(fmt::format("{}: empty component in key \"{}\"", where, key));
    parts.push_back(part);
  }
  if (parts.empty()) throw InputError(fmt::format("{}: empty key", where));
  set_path(root, parts, 0, value, key, where);
}

RunConfig parse_run_config(const std::string& text, const std::filesystem::path& file,
                           const std::vector<std::string>& overrides) {
  RunConfig c;
  c.file = file;
  const std::string name = file.string();
  Reader r{name};
  try {
    c.root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: not valid YAML: {}", name, e.what()));
  }
  if (!c.root || c.root.IsNull()) c.root = YAML::Node(YAML::NodeType::Map);
  if (!c.root.IsMap()) throw InputError(fmt::format("{}: the configuration must be a YAML mapping", name));
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw InputError(fmt::format("--set {}: expected key=value (e.g. data.perplexity.max_chunks=4)", o));
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw InputError(fmt::format("--set {}: the value is not valid YAML: {}", o, e.what()));
    }
    set_dotted(c.root, o.substr(0, eq), value, "--set " + o);
  }
  {
    YAML::Emitter out;
    out << c.root;
    c.yaml = out.c_str();
    c.yaml += "\n";
  }
  r.check_keys(c.root, "", kTopLevel);

  const std::filesystem::path base = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  auto resolve_raw = [&](const std::string& value) -> std::filesystem::path {
    if (value.empty()) return {};
    std::filesystem::path p(value);
    return p.is_absolute() ? p : (base / p).lexically_normal();
  };
  // Absolute: a substituted path is resolved against the configuration's directory once more.
  std::filesystem::path assets_path = resolve_raw(r.get<std::string>(c.root, "assets", "assets", ""));
  if (!assets_path.empty()) assets_path = std::filesystem::absolute(assets_path).lexically_normal();
  const std::string assets = assets_path.string();
  auto path_of = [&](const YAML::Node& parent, const std::string& key, const std::string& dotted) -> std::filesystem::path {
    const std::string value = r.get<std::string>(parent, key, dotted, "");
    if (value.find("${assets}") != std::string::npos && assets.empty())
      throw InputError(fmt::format("{}: uses ${{assets}} but the configuration sets no `assets`", r.where(parent[key], dotted)));
    return resolve_raw(substitute_assets(value, assets));
  };
  auto positive = [&](const YAML::Node& parent, const std::string& key, const std::string& dotted, int64_t fallback,
                      int64_t minimum) {
    const int64_t v = r.get<int64_t>(parent, key, dotted, fallback);
    if (v < minimum) throw InputError(fmt::format("{}: must be at least {}, got {}", r.where(parent[key], dotted), minimum, v));
    return v;
  };

  c.model = path_of(c.root, "model", "model");
  c.tokenizer = path_of(c.root, "tokenizer", "tokenizer");
  c.archive = path_of(c.root, "archive", "archive");
  if (c.model.empty()) throw InputError(fmt::format("{}: `model` is required (a Hugging Face directory or llama2.c .bin)", name));
  if (c.archive.empty()) throw InputError(fmt::format("{}: `archive` is required (the HDF5 file of the run)", name));
  const YAML::Node stages = c.root["stages"];
  if (!stages || !stages.IsSequence() || stages.size() == 0)
    throw InputError(fmt::format("{}: `stages` must be a non-empty list, e.g. [baseline, evaluate]", name));
  for (size_t i = 0; i < stages.size(); ++i) {
    if (!stages[i].IsScalar()) throw InputError(fmt::format("{}: expected a stage name", r.where(stages[i], "stages")));
    c.stages.push_back(stages[i].as<std::string>());
  }

  const YAML::Node data = c.root["data"];
  r.check_keys(data, "data", {"perplexity", "logprobs", "prompts", "multiple_choice"});
  if (data) {
    const YAML::Node ppl = data["perplexity"];
    r.check_keys(ppl, "data.perplexity", {"text", "ctx", "max_chunks"});
    if (ppl) {
      c.ppl_text = path_of(ppl, "text", "data.perplexity.text");
      c.ctx = positive(ppl, "ctx", "data.perplexity.ctx", 256, 1);
      c.max_chunks = positive(ppl, "max_chunks", "data.perplexity.max_chunks", 0, 0);
    }
    const YAML::Node lp = data["logprobs"];
    r.check_keys(lp, "data.logprobs", {"store", "top_k", "max_tokens"});
    if (lp) {
      c.logprob_mode = parse_logprob_mode(r.get<std::string>(lp, "store", "data.logprobs.store", "full"),
                                          r.where(lp, "data.logprobs.store"));
      c.top_k = positive(lp, "top_k", "data.logprobs.top_k", 64, 1);
      c.max_logprob_tokens = positive(lp, "max_tokens", "data.logprobs.max_tokens", 4096, -1);
    }
    const YAML::Node pr = data["prompts"];
    r.check_keys(pr, "data.prompts", {"file", "text", "count", "tokens", "continuation"});
    if (pr) {
      c.prompts_file = path_of(pr, "file", "data.prompts.file");
      c.prompts_text = path_of(pr, "text", "data.prompts.text");
      if (!c.prompts_file.empty() && !c.prompts_text.empty())
        throw InputError(fmt::format("{}: give either data.prompts.file or data.prompts.text, not both", name));
      c.prompt_count = positive(pr, "count", "data.prompts.count", 8, 0);
      c.prompt_tokens = positive(pr, "tokens", "data.prompts.tokens", 32, 1);
      c.continuation = positive(pr, "continuation", "data.prompts.continuation", 32, 1);
    }
    const YAML::Node mc = data["multiple_choice"];
    r.check_keys(mc, "data.multiple_choice", {"file", "build", "max_items"});
    if (mc) {
      c.mc_file = path_of(mc, "file", "data.multiple_choice.file");
      c.mc_max_items = positive(mc, "max_items", "data.multiple_choice.max_items", 0, 0);
      const YAML::Node b = mc["build"];
      r.check_keys(b, "data.multiple_choice.build",
                   {"text", "items", "choices", "context_sentences", "min_words", "max_words", "seed"});
      if (b) {
        const std::string k = "data.multiple_choice.build.";
        c.mc_build_text = path_of(b, "text", k + "text");
        if (c.mc_build_text.empty()) throw InputError(fmt::format("{}: {}text is required", name, k));
        c.mc_build.items = positive(b, "items", k + "items", c.mc_build.items, 1);
        c.mc_build.choices = positive(b, "choices", k + "choices", c.mc_build.choices, 2);
        c.mc_build.context_sentences = positive(b, "context_sentences", k + "context_sentences", c.mc_build.context_sentences, 1);
        c.mc_build.min_words = positive(b, "min_words", k + "min_words", c.mc_build.min_words, 1);
        c.mc_build.max_words = positive(b, "max_words", k + "max_words", c.mc_build.max_words, 1);
        c.mc_build.seed = static_cast<uint64_t>(positive(b, "seed", k + "seed", static_cast<int64_t>(c.mc_build.seed), 0));
      }
      if (!c.mc_file.empty() && !c.mc_build_text.empty())
        throw InputError(fmt::format("{}: give either data.multiple_choice.file or .build, not both", name));
    }
  }

  const YAML::Node ev = c.root["evaluate"];
  r.check_keys(ev, "evaluate", {"plans", "store_per_token"});
  if (ev) {
    c.store_per_token = r.get<bool>(ev, "store_per_token", "evaluate.store_per_token", true);
    const YAML::Node plans = ev["plans"];
    if (plans && !plans.IsSequence())
      throw InputError(fmt::format("{}: must be a list of plan files, `base`, or {{name, file | plan}}",
                                   r.where(plans, "evaluate.plans")));
    for (size_t i = 0; plans && i < plans.size(); ++i) {
      const YAML::Node p = plans[i];
      const std::string key = fmt::format("evaluate.plans[{}]", i);
      PlanEntry e;
      e.where = r.where(p, key);
      auto read_file = [&](const std::filesystem::path& path) {
        std::ifstream in(path);
        if (!in) throw InputError(fmt::format("{}: cannot open the plan file {}", e.where, path.string()));
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
      };
      if (p.IsScalar()) {
        const std::string value = p.as<std::string>();
        if (value == "base" || value == "identity") {
          e.name = "base";
          e.source = "builtin";
          e.yaml = "drop_layers: []\ncomponents: []\n";
        } else {
          const std::filesystem::path path = resolve_raw(substitute_assets(value, assets));
          e.name = path.stem().string();
          e.source = path.string();
          e.yaml = read_file(path);
        }
      } else if (p.IsMap()) {
        r.check_keys(p, key, {"name", "file", "plan"});
        const bool has_file = p["file"] && !p["file"].IsNull();
        const bool has_plan = p["plan"] && !p["plan"].IsNull();
        if (has_file == has_plan) throw InputError(fmt::format("{}: give exactly one of `file` and `plan`", e.where));
        if (has_file) {
          const std::filesystem::path path = path_of(p, "file", key + ".file");
          e.source = path.string();
          e.yaml = read_file(path);
          e.name = path.stem().string();
        } else {
          e.source = "inline";
          YAML::Emitter out;
          out << p["plan"];
          e.yaml = out.c_str();
          e.name = fmt::format("plan{}", i);
        }
        e.name = r.get<std::string>(p, "name", key + ".name", e.name);
      } else {
        throw InputError(fmt::format("{}: expected a plan file, `base`, or {{name, file | plan}}", e.where));
      }
      c.plans.push_back(std::move(e));
    }
  }
  return c;
}

RunConfig load_run_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::ifstream in(file);
  if (!in) throw InputError(fmt::format("{}: cannot open the run configuration", file.string()));
  std::stringstream text;
  text << in.rdbuf();
  return parse_run_config(text.str(), file, overrides);
}

}  // namespace divprune

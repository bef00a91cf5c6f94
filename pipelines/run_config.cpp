#include "pipelines/run_config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "core/errors.hpp"
#include "core/input_file.hpp"

namespace divprune {

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

PlanEntry parse_plan_entry(const ConfigNode& p, size_t i) {
  PlanEntry e;
  e.where = p.where();
  auto read_file = [&](const std::filesystem::path& path) {
    return read_input_file(path, fmt::format("the plan file named at {}", e.where));
  };
  if (p.is_scalar()) {
    const std::string value = p.as<std::string>();
    if (value == "base" || value == "identity") {
      e.name = "base";
      e.source = "builtin";
      e.yaml = "drop_layers: []\ncomponents: []\n";
    } else {
      const std::filesystem::path path = p.as_path();
      e.name = path.stem().string();
      e.source = path.string();
      e.yaml = read_file(path);
    }
  } else if (p.is_map()) {
    p.check_keys({"name", "file", "plan"});
    const bool has_file = p["file"].present();
    if (has_file == p["plan"].present()) p.fail("give exactly one of `file` and `plan`");
    if (has_file) {
      const std::filesystem::path path = p.get_path("file");
      e.source = path.string();
      e.yaml = read_file(path);
      e.name = path.stem().string();
    } else {
      e.source = "inline";
      YAML::Emitter out;
      out << p["plan"].yaml();
      e.yaml = out.c_str();
      e.name = fmt::format("plan{}", i);
    }
    e.name = p.get<std::string>("name", e.name);
  } else {
    p.fail("expected a plan file, `base`, or {name, file | plan}");
  }
  return e;
}

RunConfig parse_run_config(const std::string& text, const std::filesystem::path& file,
                           const std::vector<std::string>& overrides) {
  RunConfig c;
  c.file = file;
  const std::string name = file.string();
  YAML::Node tree = ConfigNode::parse(text, name).yaml();  // refuses invalid YAML and duplicate keys
  if (!tree.IsDefined() || tree.IsNull()) tree = YAML::Node(YAML::NodeType::Map);
  if (!tree.IsMap()) throw InputError(fmt::format("{}: the configuration must be a YAML mapping", name));
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
    set_dotted(tree, o.substr(0, eq), value, "--set " + o);
  }
  {
    YAML::Emitter out;
    out << tree;
    c.yaml = out.c_str();
    c.yaml += "\n";
  }

  // Relative paths resolve against the configuration's directory (ConfigNode::as_path).
  const std::filesystem::path base = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  ConfigNode root = ConfigNode::wrap(tree, name, base);
  // Top-level sections. A stage that needs configuration adds its section here and documents it in
  // configs/README.md.
  root.check_keys({"assets", "model", "tokenizer", "archive", "stages", "data", "evaluate",
                   "space", "sample", "train", "search",  // pipelines/search_common.hpp
                   "sensitivity",                          // pipelines/sensitivity.cpp
                   "heldout",                              // pipelines/heldout.cpp
                   "baselines",                            // pipelines/baselines.cpp
                   "heal",                                 // pipelines/heal.cpp
                   "calibration"});                        // pipelines/run_calibration.hpp
  // Absolute: a substituted path is resolved against the configuration's directory once more.
  std::filesystem::path assets = root.get_path("assets");
  if (!assets.empty()) root = root.with_variable("assets", std::filesystem::absolute(assets).lexically_normal().string());
  c.root = root;
  auto at_least = [](const ConfigNode& parent, std::string_view key, int64_t fallback, int64_t minimum) {
    const int64_t v = parent.get<int64_t>(key, fallback);
    if (v < minimum) parent[key].fail(fmt::format("must be at least {}, got {}", minimum, v));
    return v;
  };

  c.model = root.get_path("model");
  c.tokenizer = root.get_path("tokenizer");
  c.archive = root.get_path("archive");
  if (c.model.empty()) throw InputError(fmt::format("{}: `model` is required (a Hugging Face directory or llama2.c .bin)", name));
  if (c.archive.empty()) throw InputError(fmt::format("{}: `archive` is required (the HDF5 file of the run)", name));
  require_output_file_path(c.archive, fmt::format("the archive (`archive` of {})", name));
  const ConfigNode stages = root["stages"];
  if (!stages.is_sequence() || stages.size() == 0)
    throw InputError(fmt::format("{}: `stages` must be a non-empty list, e.g. [baseline, evaluate]", name));
  for (const ConfigNode& stage : stages.elements()) {
    if (!stage.is_scalar()) stage.fail("expected a stage name");
    c.stages.push_back(stage.as<std::string>());
  }

  const ConfigNode data = root["data"].check_keys({"perplexity", "logprobs", "prompts", "multiple_choice"});
  const ConfigNode ppl = data["perplexity"].check_keys({"text", "ctx", "max_chunks"});
  c.ppl_text = ppl.get_path("text");
  c.ctx = at_least(ppl, "ctx", c.ctx, 1);
  c.max_chunks = at_least(ppl, "max_chunks", c.max_chunks, 0);

  const ConfigNode lp = data["logprobs"].check_keys({"store", "top_k", "max_tokens"});
  c.logprob_mode = lp.get_enum("store", kLogprobModeNames, c.logprob_mode);
  c.top_k = at_least(lp, "top_k", c.top_k, 1);
  c.max_logprob_tokens = at_least(lp, "max_tokens", c.max_logprob_tokens, -1);

  const ConfigNode pr = data["prompts"].check_keys({"file", "text", "count", "tokens", "continuation"});
  c.prompts_file = pr.get_path("file");
  c.prompts_text = pr.get_path("text");
  if (!c.prompts_file.empty() && !c.prompts_text.empty())
    throw InputError(fmt::format("{}: give either data.prompts.file or data.prompts.text, not both", name));
  c.prompt_count = at_least(pr, "count", c.prompt_count, 0);
  c.prompt_tokens = at_least(pr, "tokens", c.prompt_tokens, 1);
  c.continuation = at_least(pr, "continuation", c.continuation, 1);

  const ConfigNode mc = data["multiple_choice"].check_keys({"file", "build", "max_items"});
  c.mc_file = mc.get_path("file");
  c.mc_max_items = at_least(mc, "max_items", c.mc_max_items, 0);
  const ConfigNode b =
      mc["build"].check_keys({"kind", "text", "items", "choices", "context_sentences", "min_words", "max_words", "seed"});
  if (b.present()) {
    c.mc_build_text = b.get_path("text");
    if (c.mc_build_text.empty()) throw InputError(fmt::format("{}: data.multiple_choice.build.text is required", name));
    c.mc_build.items = at_least(b, "items", c.mc_build.items, 1);
    c.mc_build.choices = at_least(b, "choices", c.mc_build.choices, 2);
    c.mc_build.context_sentences = at_least(b, "context_sentences", c.mc_build.context_sentences, 1);
    c.mc_build.min_words = at_least(b, "min_words", c.mc_build.min_words, 1);
    c.mc_build.max_words = at_least(b, "max_words", c.mc_build.max_words, 1);
    c.mc_build.seed = b.get<uint64_t>("seed", c.mc_build.seed);
    c.mc_build_kind = b.get<std::string>("kind", c.mc_build_kind);
    if (c.mc_build_kind != "next_sentence" && c.mc_build_kind != "cloze")
      b["kind"].fail(fmt::format("expected next_sentence or cloze, found \"{}\"", c.mc_build_kind));
  }
  if (!c.mc_file.empty() && !c.mc_build_text.empty())
    throw InputError(fmt::format("{}: give either data.multiple_choice.file or .build, not both", name));

  const ConfigNode cal = root["calibration"].check_keys({"text", "sequences", "length", "seed", "mode"});
  if (cal.present()) {
    c.calibration_text = cal.get_path("text");
    if (c.calibration_text.empty()) throw InputError(fmt::format("{}: calibration.text is required", name));
    c.calibration_sequences = at_least(cal, "sequences", c.calibration_sequences, 1);
    c.calibration_length = at_least(cal, "length", c.calibration_length, 0);
    c.calibration_seed = cal.get<uint64_t>("seed", c.calibration_seed);
    c.calibration_mode = cal.get<std::string>("mode", c.calibration_mode);
    if (c.calibration_mode != "cached" && c.calibration_mode != "sequential")
      cal["mode"].fail(fmt::format("expected cached or sequential, found \"{}\"", c.calibration_mode));
    // Calibrating on the evaluation text would let the operators fit the very tokens they are scored on.
    if (same_file(c.calibration_text, c.ppl_text))
      cal["text"].fail(fmt::format("the calibration text must not be the evaluation text data.perplexity.text ({})",
                                   c.ppl_text.string()));
  }

  const ConfigNode ev = root["evaluate"].check_keys({"plans", "store_per_token", "part", "parts"});
  c.store_per_token = ev.get<bool>("store_per_token", c.store_per_token);
  c.plan_parts = at_least(ev, "parts", c.plan_parts, 1);
  c.plan_part = at_least(ev, "part", c.plan_part, 0);
  if (c.plan_part >= c.plan_parts)
    ev["part"].fail(fmt::format("must be below evaluate.parts ({}), found {}", c.plan_parts, c.plan_part));
  const ConfigNode plans = ev["plans"];
  if (plans.present() && !plans.is_sequence())
    plans.fail("must be a list of plan files, `base`, or {name, file | plan}");
  for (size_t i = 0; i < plans.size(); ++i) c.plans.push_back(parse_plan_entry(plans[i], i));
  return c;
}

RunConfig load_run_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  return parse_run_config(read_input_file(file, "the run configuration"), file, overrides);
}

}  // namespace divprune

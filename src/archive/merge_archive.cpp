#include "archive/merge_archive.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <map>

#include "archive/archive_file.hpp"
#include "archive/archive_lock.hpp"
#include "core/errors.hpp"

namespace divprune {

namespace {

// Root, /data and /baseline attributes that must agree between the inputs (the plans' metrics are relative to
// them), most fundamental first. Attributes of the run itself (config_yaml, world_size, ...) may differ between
// array tasks.
struct Identity {
  const char* object;
  const char* attr;
  bool integer;
};
constexpr Identity kIdentity[] = {{"/", "schema_version", true},      {"/", "model_checksum", false},
                                  {"data", "eval_hash", false},       {"baseline", "eval_hash", false},
                                  {"baseline", "logprob_mode", false}, {"baseline", "top_k", true},
                                  {"baseline", "vocab_size", true},   {"baseline", "kept_chunks", true},
                                  {"baseline", "kept_tokens", true}};

std::string attr_text(const H5File& f, const std::string& object, const std::string& attr, bool integer) {
  if (!f.has_attr(object, attr)) return "(none)";
  return integer ? std::to_string(f.attr_int(object, attr)) : f.attr_string(object, attr);
}

// Scalars under `group` (a summary), by name. Compared bit for bit: the same computation gives the same bits.
std::map<std::string, double> scalars(const H5File& f, const std::string& group) {
  std::map<std::string, double> out;
  for (const std::string& name : f.children(group)) out[name] = f.read_double(group + "/" + name)[0];
  return out;
}
bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// First scalar of `group` that differs between a and b, as "NAME: expected X, found Y"; "" when they agree.
std::string scalar_difference(const H5File& a, const H5File& b, const std::string& group) {
  const auto x = scalars(a, group), y = scalars(b, group);
  for (const auto& [name, value] : x) {
    const auto it = y.find(name);
    if (it == y.end()) return fmt::format("{}/{}: expected {}, found none", group, name, value);
    if (!same_bits(value, it->second)) return fmt::format("{}/{}: expected {}, found {}", group, name, value, it->second);
  }
  for (const auto& [name, value] : y)
    if (!x.count(name)) return fmt::format("{}/{}: expected none, found {}", group, name, value);
  return "";
}

void check_input(const H5File& f) {
  if (!f.has_attr("/", "schema_version"))
    throw InputError(fmt::format("{}: not a divprune archive (no schema_version)", f.path()));
  if (!group_complete(f, "baseline"))
    throw InputError(fmt::format("{}: no complete /baseline (run its baseline stage first)", f.path()));
}

// The inputs must share schema, model, evaluation data and baseline with the first one.
void check_same_baseline(const H5File& first, const H5File& f) {
  for (const Identity& id : kIdentity) {
    const std::string a = attr_text(first, id.object, id.attr, id.integer);
    const std::string b = attr_text(f, id.object, id.attr, id.integer);
    if (a != b)
      throw InputError(fmt::format("{}: {}@{} differs from {}: expected {}, found {}", f.path(), id.object, id.attr,
                                   first.path(), a, b));
  }
  const std::string diff = scalar_difference(first, f, "baseline/summary");
  if (!diff.empty())
    throw InputError(fmt::format("{}: baseline differs from {}: {}", f.path(), first.path(), diff));
}

}  // namespace

MergeResult merge_archives(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& out) {
  if (inputs.empty()) throw InputError("merge: no input archives");
  if (std::filesystem::exists(out))
    throw InputError(fmt::format("{}: exists; merge writes a new archive (remove it or choose another --out)", out.string()));
  // Every input is checked before anything is written.
  std::vector<H5File> files;
  for (const auto& in : inputs) {
    if (!std::filesystem::is_regular_file(in)) throw InputError(fmt::format("{}: no such archive", in.string()));
    for (size_t j = 0; j < files.size(); ++j)
      if (std::filesystem::equivalent(in, inputs[j])) throw InputError(fmt::format("{}: given twice", in.string()));
    files.emplace_back(in, H5Mode::Read);
    check_input(files.back());
    if (files.size() > 1) check_same_baseline(files.front(), files.back());
  }
  std::vector<std::string> feature_names;
  if (files.front().exists("plans/feature_names")) feature_names = files.front().read_strings("plans/feature_names");
  for (const H5File& f : files)
    if (f.exists("plans/feature_names") && f.read_strings("plans/feature_names") != feature_names)
      throw InputError(fmt::format("{}: /plans/feature_names differs from {} (archives of other divprune versions)",
                                   f.path(), files.front().path()));

  // Which input provides each plan: the first that holds it complete; later copies must carry the same metrics.
  MergeResult result;
  std::map<std::string, size_t> source;
  for (size_t i = 0; i < files.size(); ++i) {
    const H5File& f = files[i];
    for (const std::string& id : f.children("plans")) {
      const std::string g = "plans/" + id;
      if (!f.is_group(g)) continue;
      if (!group_complete(f, g)) {
        result.skipped.push_back(fmt::format("{}: plan {}", f.path(), id));
        continue;
      }
      const auto it = source.find(id);
      if (it == source.end()) {
        source[id] = i;
        continue;
      }
      const H5File& first = files[it->second];
      if (first.attr_string(g, "hash") != f.attr_string(g, "hash"))
        throw InputError(fmt::format("{}: plan {} has hash {}, {} has {}", f.path(), id, f.attr_string(g, "hash"),
                                     first.path(), first.attr_string(g, "hash")));
      const std::string diff = scalar_difference(first, f, g + "/summary");
      if (!diff.empty())
        throw InputError(fmt::format("{}: plan {} differs from the same plan in {}: {}", f.path(), id, first.path(), diff));
      ++result.duplicates;
    }
    for (const std::string& group : f.children("/"))
      if (group != "runs" && group != "data" && group != "baseline" && group != "plans")
        result.dropped.push_back(fmt::format("{}: /{}", f.path(), group));
  }

  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  const ArchiveLock lock(out);
  H5File dst(out, H5Mode::Truncate);
  const H5File& first = files.front();
  h5_copy_attributes(first, "/", dst, "/");
  h5_copy_object(first, "data", dst, "data");
  h5_copy_object(first, "baseline", dst, "baseline");
  dst.create_group("plans");
  if (first.exists("plans/feature_names")) h5_copy_object(first, "plans/feature_names", dst, "plans/feature_names");

  // /runs in input order; offsets[i] renumbers input i's run indices.
  std::vector<int64_t> offsets(files.size(), 0);
  int64_t runs = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    offsets[i] = runs;
    int64_t last = 0;
    for (const std::string& run : files[i].children("runs")) {
      const int64_t index = std::stoll(run);
      const std::string to = fmt::format("runs/{:04d}", runs + index);
      h5_copy_object(files[i], "runs/" + run, dst, to);
      dst.set_attr(to, "merged_from", files[i].path());
      last = std::max(last, index);
    }
    runs += std::max(last, files[i].has_attr("/", "runs") ? files[i].attr_int("/", "runs") : 0);
  }
  dst.set_attr("/", "runs", runs);
  for (const auto& [id, i] : source) {
    const std::string g = "plans/" + id;
    h5_copy_object(files[i], g, dst, g);
    dst.set_attr(g, "run_index", files[i].attr_int(g, "run_index") + offsets[i]);
    ++result.plans;
  }
  dst.close();
  return result;
}

}  // namespace divprune

#include "archive/archive.hpp"

#include <fmt/format.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "archive/archive_file.hpp"
#include "core/dtype.hpp"
#include "core/errors.hpp"
#include "core/sha256.hpp"

namespace divprune {

namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// Concatenation and offsets of ragged rows.
template <typename T>
void flatten(const std::vector<std::vector<T>>& rows, std::vector<T>& flat, std::vector<int64_t>& offsets) {
  flat.clear();
  offsets.assign(1, 0);
  for (const auto& r : rows) {
    flat.insert(flat.end(), r.begin(), r.end());
    offsets.push_back(static_cast<int64_t>(flat.size()));
  }
}

template <typename T>
std::vector<std::vector<T>> unflatten(const std::vector<T>& flat, const std::vector<int64_t>& offsets) {
  std::vector<std::vector<T>> rows;
  for (size_t i = 0; i + 1 < offsets.size(); ++i)
    rows.emplace_back(flat.begin() + offsets[i], flat.begin() + offsets[i + 1]);
  return rows;
}

int64_t size_of(const std::vector<int32_t>& v) { return static_cast<int64_t>(v.size()); }

// Rows of the chunked per-token datasets: 64 Ki elements per chunk of a 1-D array; 16 rows of a (T, V) one.
constexpr int64_t kTokenChunk = 65536;
constexpr int64_t kLogprobChunkRows = 16;

void write_i32(H5File& f, const std::string& name, const Shape& dims, const std::vector<int32_t>& v, const char* units,
               const std::string& description, int64_t chunk = 0) {
  f.write_int32(name, dims, v.data(), chunk);
  annotate(f, name, units, description);
}
void write_i64(H5File& f, const std::string& name, const std::vector<int64_t>& v, const char* units,
               const std::string& description) {
  f.write_int64(name, {static_cast<int64_t>(v.size())}, v.data());
  annotate(f, name, units, description);
}
void write_f64(H5File& f, const std::string& name, const Shape& dims, const std::vector<double>& v, const char* units,
               const std::string& description, int64_t chunk = 0) {
  f.create_dataset(name, H5Type::F64, dims, chunk, chunk > 0);
  f.write_rows(name, H5Type::F64, 0, dims.empty() ? 1 : dims[0], v.data());
  annotate(f, name, units, description);
}
// Every metric of `summary` as an annotated scalar dataset of `group` (names, units, descriptions: kSummaryMetrics).
void write_summary(H5File& f, const std::string& group, const Summary& summary, bool base) {
  for (SummaryMetric m : summary.metrics()) {
    const std::string name = group + "/" + summary_metric_name(m);
    f.write_scalar(name, summary[m]);
    annotate(f, name, summary_metric_info(m).units, summary_metric_description(m, base));
  }
}
void write_str(H5File& f, const std::string& name, const std::vector<std::string>& v, const std::string& description) {
  f.write_strings(name, v);
  annotate(f, name, "text", description);
}

}  // namespace

void annotate(H5File& file, const std::string& dataset, const std::string& units, const std::string& description) {
  file.set_attr(dataset, "units", units);
  file.set_attr(dataset, "description", description);
}

std::string plan_id_from_hash(const std::string& hash) { return hash.substr(0, 16); }

std::string model_checksum(const Checkpoint& checkpoint) {
  Sha256 h;
  for (const std::string& name : checkpoint.files()) {
    const std::filesystem::path path(name);
    const uint64_t size = std::filesystem::file_size(path);
    h.update(path.filename().string());
    h.update(&size, sizeof(size));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot open to checksum", name));
    std::vector<char> head;
    if (path.extension() == ".safetensors") {
      uint64_t header = 0;
      in.read(reinterpret_cast<char*>(&header), 8);
      if (!in || header > size - 8) throw InputError(fmt::format("{}: bad safetensors header size", name));
      head.resize(static_cast<size_t>(header));
      in.read(head.data(), static_cast<std::streamsize>(header));
    } else {
      head.resize(static_cast<size_t>(size <= (1u << 20) ? size : (64u << 10)));
      in.read(head.data(), static_cast<std::streamsize>(head.size()));
    }
    h.update(head.data(), head.size());
  }
  return "sha256:" + h.hex_digest();
}

std::string model_config_json(const ModelConfig& c) {
  nlohmann::json j = {{"vocab_size", c.vocab_size},     {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size}, {"num_layers", c.num_layers},
                      {"num_heads", c.num_heads},       {"num_kv_heads", c.num_kv_heads},
                      {"head_dim", c.head_dim},         {"max_seq_len", c.max_seq_len},
                      {"rope_theta", c.rope_theta},     {"rms_norm_eps", c.rms_norm_eps},
                      {"tie_word_embeddings", c.tie_word_embeddings}, {"dtype", std::string(dtype_name(c.dtype))},
                      {"bos_id", c.bos_id},             {"eos_id", c.eos_id},
                      {"parameters", c.parameter_count()}, {"source", c.source}};
  return j.dump(2);
}

// ---- root and /runs ------------------------------------------------------------------------------------------

namespace {

// An existing archive a run may continue: a divprune archive of this schema, made with this model.
void check_archive_identity(const H5File& f, const std::string& path, const std::string& model_checksum,
                            const std::string& model_path) {
  if (!f.has_attr("/", "schema_version"))
    throw InputError(fmt::format("{}: exists but is not a divprune archive (no schema_version)", path));
  const int64_t version = f.attr_int("/", "schema_version");
  if (version != kArchiveSchemaVersion)
    throw InputError(fmt::format("{}: archive schema version {}, this divprune writes version {}", path, version,
                                 kArchiveSchemaVersion));
  const std::string checksum = f.attr_string("/", "model_checksum");
  if (checksum != model_checksum)
    throw InputError(fmt::format("{}: the archive was made with another model (checksum {}), this run uses {} ({}); "
                                 "use another archive",
                                 path, checksum, model_path, model_checksum));
}

// Plans of one archive share one feature layout (/plans/feature_names): a run whose layout differs (another
// divprune version, a `calibration:` section added or removed) would append vectors the readers misalign.
void check_feature_layout(const H5File& f, const std::string& path, const std::vector<std::string>& names) {
  if (!f.exists("plans/feature_names")) return;
  const std::vector<std::string> stored = f.read_strings("plans/feature_names");
  if (stored == names) return;
  size_t i = 0;
  while (i < stored.size() && i < names.size() && stored[i] == names[i]) ++i;
  auto at = [i](const std::vector<std::string>& v) { return i < v.size() ? "\"" + v[i] + "\"" : std::string("none"); };
  throw InputError(fmt::format(
      "{}: /plans/feature_names holds {} plan features, this run writes {} (first difference at index {}: {} vs "
      "{}); its plans were written by another divprune version or with(out) a `calibration:` section: resume "
      "with the same version and configuration, or use another archive",
      path, stored.size(), names.size(), i, at(stored), at(names)));
}

}  // namespace

void RunArchive::check_resumable(const std::string& model_checksum, const std::string& model_path) const {
  if (!exists()) return;
  // Read-only, so a rejected run leaves the file as it was; writability is the file system's answer.
  const H5File f = open_archive_read(*this);
  if (::access(path_.c_str(), W_OK) != 0)
    throw InputError(fmt::format("{}: cannot open as an HDF5 file: read-only: no permission to write it ({})",
                                 path_.string(), std::strerror(errno)));
  check_archive_identity(f, path_.string(), model_checksum, model_path);
}

int64_t RunArchive::begin_run(const ArchiveRunInfo& info) {
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path());
  const bool fresh = !exists();
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  if (!fresh) {
    check_archive_identity(f, path_.string(), info.model_checksum, info.model_path);
    if (!info.feature_names.empty()) check_feature_layout(f, path_.string(), info.feature_names);
  } else {
    f.set_attr("/", "schema_version", kArchiveSchemaVersion);
    f.set_attr("/", "created_utc", utc_now());
  }
  const int64_t index = (f.has_attr("/", "runs") ? f.attr_int("/", "runs") : 0) + 1;
  f.set_attr("/", "runs", index);
  f.set_attr("/", "software_version", DIVPRUNE_VERSION);
  f.set_attr("/", "config_yaml", info.config_yaml);
  f.set_attr("/", "model_path", info.model_path);
  f.set_attr("/", "model_checksum", info.model_checksum);
  f.set_attr("/", "model_config", info.model_config_json);
  f.set_attr("/", "tokenizer_path", info.tokenizer_path);
  f.set_attr("/", "world_size", info.world_size);
  f.set_attr("/", "tp", info.tp);
  f.set_attr("/", "replicas", info.replicas);
  f.set_attr("/", "backend", info.backend);
  const std::string run = fmt::format("runs/{:04d}", index);
  f.create_group(run);
  f.set_attr(run, "started_utc", utc_now());
  f.set_attr(run, "config_yaml", info.config_yaml);
  f.set_attr(run, "stages", join(info.stages, ","));
  f.set_attr(run, "software_version", DIVPRUNE_VERSION);
  f.set_attr(run, "world_size", info.world_size);
  f.set_attr(run, "tp", info.tp);
  f.set_attr(run, "replicas", info.replicas);
  f.set_attr(run, "backend", info.backend);
  f.close();
  return index;
}

void RunArchive::end_run(int64_t run_index, double seconds) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  const std::string run = fmt::format("runs/{:04d}", run_index);
  f.set_attr(run, "finished_utc", utc_now());
  f.set_attr(run, "seconds", seconds);
  f.close();
}

// ---- /data ----------------------------------------------------------------------------------------------------

void RunArchive::write_eval_set(const EvalSet& set) {
  // A restarted baseline finds its /data already written: keep it (HDF5 never reclaims the space of a deleted
  // dataset, so rewriting it would grow the file by its size on every restart). eval_hash is written last, so its
  // presence with the right value means a complete group; the last dataset is checked too for archives written
  // before that order.
  if (exists()) {
    const H5File r = open_archive_read(*this);
    if (r.has_attr("data", "eval_hash") && r.attr_string("data", "eval_hash") == set.hash() &&
        r.exists("data/mc/choice_text"))
      return;
  }
  int64_t bytes = 0;
  for (const auto& c : set.chunks) bytes += static_cast<int64_t>(c.size()) * 4 + 8;
  for (const auto& p : set.prompts) bytes += static_cast<int64_t>(p.size()) * 4 + 8;
  for (const auto& t : set.prompt_text) bytes += static_cast<int64_t>(t.size()) + 16;
  for (const auto& c : set.mc_context) bytes += static_cast<int64_t>(c.size()) * 4 + 8;
  for (const auto& t : set.mc_context_text) bytes += static_cast<int64_t>(t.size()) + 16;
  for (const auto& item : set.mc_choices)
    for (const auto& c : item) bytes += static_cast<int64_t>(c.size()) * 4 + 24;
  for (const auto& item : set.mc_choice_text)
    for (const auto& t : item) bytes += static_cast<int64_t>(t.size()) + 16;
  H5File f = open_archive(*this, H5Mode::ReadWrite, archive_write_reserve(bytes));
  f.remove("data");
  f.create_group("data");
  f.set_attr("data", "ctx", set.ctx);
  f.set_attr("data", "continuation_tokens", set.continuation);
  f.set_attr("data", "kept_chunks", set.kept_chunks);
  f.set_attr("data", "kept_tokens", set.kept_tokens());
  std::vector<int32_t> flat;
  std::vector<int64_t> offsets;
  flatten(set.chunks, flat, offsets);
  write_i32(f, "data/ppl/tokens", {size_of(flat)}, flat, "token id",
            "perplexity stream (protocol of shared/assets/README.md), chunk after chunk; each chunk is fed after BOS",
            kTokenChunk);
  write_i64(f, "data/ppl/chunk_offsets", offsets, "token index",
            "chunk c is tokens[chunk_offsets[c]:chunk_offsets[c+1]]; the first kept_chunks chunks keep base log-probs");
  flatten(set.prompts, flat, offsets);
  write_i32(f, "data/prompts/ids", {size_of(flat)}, flat, "token id", "greedy-continuation prompts, concatenated (no BOS)");
  write_i64(f, "data/prompts/offsets", offsets, "token index", "prompt p is ids[offsets[p]:offsets[p+1]]");
  write_str(f, "data/prompts/text", set.prompt_text, "prompt text (empty when the prompt was given as ids)");
  flatten(set.mc_context, flat, offsets);
  write_i32(f, "data/mc/context_ids", {size_of(flat)}, flat, "token id", "multiple-choice contexts, concatenated (no BOS)");
  write_i64(f, "data/mc/context_offsets", offsets, "token index", "item i's context is context_ids[context_offsets[i]:context_offsets[i+1]]");
  std::vector<std::vector<int32_t>> choices;
  std::vector<int64_t> item_offsets{0};
  std::vector<std::string> choice_text;
  for (size_t i = 0; i < set.mc_choices.size(); ++i) {
    for (const auto& c : set.mc_choices[i]) choices.push_back(c);
    item_offsets.push_back(static_cast<int64_t>(choices.size()));
    if (i < set.mc_choice_text.size())
      choice_text.insert(choice_text.end(), set.mc_choice_text[i].begin(), set.mc_choice_text[i].end());
  }
  flatten(choices, flat, offsets);
  write_i32(f, "data/mc/choice_ids", {size_of(flat)}, flat, "token id", "every item's choices, concatenated");
  write_i64(f, "data/mc/choice_offsets", offsets, "token index", "choice c is choice_ids[choice_offsets[c]:choice_offsets[c+1]]");
  write_i64(f, "data/mc/item_offsets", item_offsets, "choice index", "item i's choices are choices item_offsets[i] .. item_offsets[i+1]-1");
  write_i32(f, "data/mc/answer", {size_of(set.mc_answer)}, set.mc_answer, "choice index", "0-based index of the correct choice within its item");
  write_str(f, "data/mc/context_text", set.mc_context_text, "multiple-choice context text");
  write_str(f, "data/mc/choice_text", choice_text, "multiple-choice choice text, all items' choices in order");
  f.set_attr("data", "eval_hash", set.hash());  // last: marks the group complete
  f.close();
}

EvalSet RunArchive::read_eval_set() const {
  H5File f = open_archive_read(*this);
  if (!f.exists("data/ppl/tokens"))
    throw InputError(fmt::format("{}: no evaluation data (run the baseline stage first)", path_.string()));
  EvalSet set;
  set.ctx = f.attr_int("data", "ctx");
  set.continuation = f.attr_int("data", "continuation_tokens");
  set.kept_chunks = f.attr_int("data", "kept_chunks");
  set.chunks = unflatten(f.read_int32("data/ppl/tokens"), f.read_int64("data/ppl/chunk_offsets"));
  set.prompts = unflatten(f.read_int32("data/prompts/ids"), f.read_int64("data/prompts/offsets"));
  set.prompt_text = f.read_strings("data/prompts/text");
  set.mc_context = unflatten(f.read_int32("data/mc/context_ids"), f.read_int64("data/mc/context_offsets"));
  const auto choices = unflatten(f.read_int32("data/mc/choice_ids"), f.read_int64("data/mc/choice_offsets"));
  const auto item_offsets = f.read_int64("data/mc/item_offsets");
  const auto choice_text = f.read_strings("data/mc/choice_text");
  for (size_t i = 0; i + 1 < item_offsets.size(); ++i) {
    set.mc_choices.emplace_back(choices.begin() + item_offsets[i], choices.begin() + item_offsets[i + 1]);
    if (!choice_text.empty())
      set.mc_choice_text.emplace_back(choice_text.begin() + item_offsets[i], choice_text.begin() + item_offsets[i + 1]);
  }
  set.mc_answer = f.read_int32("data/mc/answer");
  set.mc_context_text = f.read_strings("data/mc/context_text");
  if (f.attr_string("data", "eval_hash") != set.hash())
    throw InputError(fmt::format("{}: /data does not match its eval_hash (the archive is damaged)", path_.string()));
  return set;
}

// ---- /baseline ------------------------------------------------------------------------------------------------

std::string RunArchive::complete_baseline_hash() const {
  if (!exists()) return "";
  H5File f = open_archive_read(*this);
  if (!f.has_attr("baseline", "complete") || f.attr_int("baseline", "complete") != 1) return "";
  return f.attr_string("baseline", "eval_hash");
}

void RunArchive::begin_baseline(const EvalSet& set, LogprobMode mode, int64_t top_k, int64_t vocab) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  const int64_t stored_top_k = mode == LogprobMode::TopK ? top_k : int64_t{0};
  // An incomplete baseline of an interrupted run for the same data and storage keeps its datasets: the restart
  // writes every row again in place. Deleting them would leave their space unused in the file for good (HDF5 does
  // not reclaim it): at Llama-2 scale hundreds of MB per interruption. Anything else is replaced.
  const bool reuse = f.is_group("baseline") && !group_complete(f, "baseline") &&
                     f.has_attr("baseline", "eval_hash") && f.attr_string("baseline", "eval_hash") == set.hash() &&
                     f.has_attr("baseline", "logprob_mode") &&
                     f.attr_string("baseline", "logprob_mode") == logprob_mode_name(mode) &&
                     f.has_attr("baseline", "top_k") && f.attr_int("baseline", "top_k") == stored_top_k &&
                     f.has_attr("baseline", "vocab_size") && f.attr_int("baseline", "vocab_size") == vocab &&
                     f.has_attr("baseline", "kept_chunks") && f.attr_int("baseline", "kept_chunks") == set.kept_chunks &&
                     f.has_attr("baseline", "kept_tokens") && f.attr_int("baseline", "kept_tokens") == set.kept_tokens();
  if (!reuse) {
    f.remove("baseline");
    f.create_group("baseline");
    f.set_attr("baseline", "complete", int64_t{0});
    f.set_attr("baseline", "eval_hash", set.hash());
    f.set_attr("baseline", "logprob_mode", logprob_mode_name(mode));
    f.set_attr("baseline", "top_k", stored_top_k);
    f.set_attr("baseline", "vocab_size", vocab);
    f.set_attr("baseline", "kept_chunks", set.kept_chunks);
    f.set_attr("baseline", "kept_tokens", set.kept_tokens());
  }
  const int64_t T = set.tokens(), K = set.kept_tokens(), P = static_cast<int64_t>(set.prompts.size()),
                N = set.continuation, C = set.mc_choice_count();
  auto make = [&](const std::string& name, H5Type type, const Shape& dims, int64_t chunk, const char* units,
                  const std::string& description) {
    if (reuse && f.exists(name) && !f.is_group(name) && f.dims(name) == dims) return;  // annotated when created
    f.create_dataset(name, type, dims, chunk, chunk > 0);
    annotate(f, name, units, description);
  };
  make("baseline/nll", H5Type::F64, {T}, kTokenChunk, "nats",
       "base model's negative log-likelihood of every perplexity token (data/ppl/tokens)");
  make("baseline/argmax", H5Type::I32, {T}, kTokenChunk, "token id",
       "base model's argmax at every perplexity position (ties -> lower id)");
  if (mode == LogprobMode::Full) {
    make("baseline/logprobs", H5Type::F16, {K, vocab}, kLogprobChunkRows, "nats",
         "base log-probs of the whole vocabulary at the first kept_tokens perplexity positions, stored as fp16 of "
         "log p(v) - logprob_shift (round to nearest even); log p = logprobs + logprob_shift[:, None]; renormalise "
         "each row by its own log-sum-exp before use (which also removes the shift)");
    make("baseline/logprob_shift", H5Type::F64, {K}, kTokenChunk, "nats",
         "per-row shift of baseline/logprobs: sum_v p_v log p_v (minus the entropy); centres the probable tokens "
         "on 0 where fp16 is finest");
  }
  if (mode == LogprobMode::TopK) {
    make("baseline/topk_ids", H5Type::I32, {K, top_k}, 1024, "token id",
         "ids of the top_k most probable tokens at each kept position, by decreasing probability (ties -> lower id)");
    make("baseline/topk_logprobs", H5Type::F16, {K, top_k}, 1024, "nats",
         "fp16 log-probs of topk_ids (not renormalised: their mass is below one)");
  }
  make("baseline/continuation", H5Type::I32, {P, N}, 0, "token id",
       "base model's greedy continuation of each prompt (after BOS + prompt; KV-cache decoding)");
  make("baseline/tf_argmax", H5Type::I32, {P, N}, 0, "token id",
       "base model's teacher-forced argmax on BOS + prompt + continuation at the N continuation positions");
  make("baseline/mc/logprob_sum", H5Type::F64, {C}, 0, "nats", "sum of log p of each choice's tokens after BOS + context");
  f.close();
}

void RunArchive::write_baseline_chunk(const EvalSet& set, int64_t chunk, const BaselineChunk& out) {
  const int64_t bytes = static_cast<int64_t>(out.nll.size() * 12 + out.logprobs.size() * 2 + out.logprob_shift.size() * 8 +
                                             out.topk_ids.size() * 4 + out.topk_logprobs.size() * 2);
  H5File f = open_archive(*this, H5Mode::ReadWrite, archive_write_reserve(bytes));
  const int64_t offset = set.chunk_offset(chunk), n = static_cast<int64_t>(out.nll.size());
  f.write_rows("baseline/nll", H5Type::F64, offset, n, out.nll.data());
  f.write_rows("baseline/argmax", H5Type::I32, offset, n, out.argmax.data());
  if (!out.logprobs.empty()) {
    EXPECTS(static_cast<int64_t>(out.logprob_shift.size()) == n, "baseline chunk: one log-prob shift per row");
    f.write_rows("baseline/logprobs", H5Type::F16, offset, n, out.logprobs.data());
    f.write_rows("baseline/logprob_shift", H5Type::F64, offset, n, out.logprob_shift.data());
  }
  if (!out.topk_ids.empty()) {
    f.write_rows("baseline/topk_ids", H5Type::I32, offset, n, out.topk_ids.data());
    f.write_rows("baseline/topk_logprobs", H5Type::F16, offset, n, out.topk_logprobs.data());
  }
  f.close();
}

void RunArchive::write_baseline_prompt(const EvalSet&, int64_t prompt, const std::vector<int32_t>& continuation,
                                       const std::vector<int32_t>& tf_argmax) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  f.write_rows("baseline/continuation", H5Type::I32, prompt, 1, continuation.data());
  f.write_rows("baseline/tf_argmax", H5Type::I32, prompt, 1, tf_argmax.data());
  f.close();
}

void RunArchive::write_baseline_mc(const EvalSet& set, int64_t item, const std::vector<double>& logprob) {
  int64_t first = 0;
  for (int64_t i = 0; i < item; ++i) first += static_cast<int64_t>(set.mc_choices[static_cast<size_t>(i)].size());
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  f.write_rows("baseline/mc/logprob_sum", H5Type::F64, first, static_cast<int64_t>(logprob.size()), logprob.data());
  f.close();
}

void RunArchive::finish_baseline(const EvalSet& set, const BaseOutputs& base, double seconds) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  std::vector<int32_t> by_sum, by_mean;
  mc_predictions(set, base.mc_logprob, by_sum, by_mean);
  const auto mean = mc_mean_logprob(set, base.mc_logprob);
  write_f64(f, "baseline/mc/logprob_mean", {static_cast<int64_t>(mean.size())}, mean, "nats",
            "logprob_sum / number of choice tokens");
  write_i32(f, "baseline/mc/pred_sum", {size_of(by_sum)}, by_sum, "choice index", "base prediction by logprob_sum (ties -> lower index)");
  write_i32(f, "baseline/mc/pred_mean", {size_of(by_mean)}, by_mean, "choice index", "base prediction by logprob_mean (ties -> lower index)");
  write_summary(f, "baseline/summary", summarize_base(set, base), true);
  f.set_attr("baseline", "seconds", seconds);
  f.set_attr("baseline", "complete", int64_t{1});
  f.close();
}

BaseOutputs RunArchive::read_base_outputs() const {
  H5File f = open_archive_read(*this);
  if (!f.has_attr("baseline", "complete") || f.attr_int("baseline", "complete") != 1)
    throw InputError(fmt::format("{}: no complete baseline (run the baseline stage first)", path_.string()));
  BaseOutputs b;
  b.nll = f.read_double("baseline/nll");
  b.argmax = f.read_int32("baseline/argmax");
  b.continuation = f.read_int32("baseline/continuation");
  b.tf_argmax = f.read_int32("baseline/tf_argmax");
  b.mc_logprob = f.read_double("baseline/mc/logprob_sum");
  return b;
}

LogprobMode RunArchive::base_logprob_mode() const {
  return parse_logprob_mode(open_archive_read(*this).attr_string("baseline", "logprob_mode"), path_.string());
}

int64_t RunArchive::base_top_k() const { return open_archive_read(*this).attr_int("baseline", "top_k"); }

void RunArchive::read_base_logprobs(int64_t row0, int64_t rows, std::vector<uint16_t>& bits) const {
  H5File f = open_archive_read(*this);
  const Shape d = f.dims("baseline/logprobs");
  bits.resize(static_cast<size_t>(rows * d[1]));
  f.read_rows("baseline/logprobs", H5Type::F16, row0, rows, bits.data());
}

void RunArchive::read_base_topk(int64_t row0, int64_t rows, std::vector<int32_t>& ids, std::vector<uint16_t>& bits) const {
  H5File f = open_archive_read(*this);
  const Shape d = f.dims("baseline/topk_ids");
  ids.resize(static_cast<size_t>(rows * d[1]));
  bits.resize(static_cast<size_t>(rows * d[1]));
  f.read_rows("baseline/topk_ids", H5Type::I32, row0, rows, ids.data());
  f.read_rows("baseline/topk_logprobs", H5Type::F16, row0, rows, bits.data());
}

// ---- /plans ---------------------------------------------------------------------------------------------------

std::map<std::string, bool> RunArchive::plan_status() const {
  std::map<std::string, bool> out;
  if (!exists()) return out;
  H5File f = open_archive_read(*this);
  for (const std::string& id : f.children("plans")) {
    const std::string g = "plans/" + id;
    if (!f.is_group(g)) continue;
    out[id] = f.has_attr(g, "complete") && f.attr_int(g, "complete") == 1;
  }
  return out;
}

void RunArchive::remove_plan(const std::string& id) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  f.remove("plans/" + id);
  f.close();
}

void RunArchive::write_feature_names(const std::vector<std::string>& names) {
  H5File f = open_archive(*this, H5Mode::ReadWrite);
  write_str(f, "plans/feature_names", names, "names of the entries of every plan's `features` vector (src/compress/FEATURES.md)");
  f.close();
}

void write_plan_header(H5File& f, const PlanRecord& r) {
  const std::string g = "plans/" + r.id;
  f.remove(g);
  f.create_group(g);
  f.set_attr(g, "complete", int64_t{0});
  f.set_attr(g, "name", r.name);
  f.set_attr(g, "hash", r.hash);
  f.set_attr(g, "source", r.source);
  f.set_attr(g, "plan_yaml", r.yaml);
  f.set_attr(g, "order", r.order);
  f.set_attr(g, "run_index", r.run_index);
  f.set_attr(g, "replica", r.replica);
  f.set_attr(g, "seconds", r.seconds);
  f.set_attr(g, "sparsity", r.sparsity);
  f.set_attr(g, "parameters", r.parameters);
  f.write_float(g + "/features", {static_cast<int64_t>(r.features.size())}, r.features.data());
  annotate(f, g + "/features", "mixed", "numeric feature vector of the plan (names: /plans/feature_names)");
}

void RunArchive::write_plan(const PlanRecord& r, const EvalSet& set, const PlanOutputs& o, const PlanComparison& c) {
  // Per token: nll, argmax, same_top1, dp, kl; per prompt and choice: a few numbers each.
  const int64_t bytes = static_cast<int64_t>(o.nll.size() * 25 + o.kl.size() * 8 + o.tf_argmax.size() * 4 +
                                             c.fdt.size() * 12 + o.mc_logprob.size() * 16 + c.pred_sum.size() * 8 +
                                             r.features.size() * 4 + r.yaml.size());
  H5File f = open_archive(*this, H5Mode::ReadWrite, archive_write_reserve(bytes));
  const std::string g = "plans/" + r.id;
  write_plan_header(f, r);
  const int64_t T = static_cast<int64_t>(o.nll.size()), P = static_cast<int64_t>(set.prompts.size()),
                N = set.continuation;
  if (r.per_token) {
    write_f64(f, g + "/tokens/nll", {T}, o.nll, "nats", "negative log-likelihood of every perplexity token", kTokenChunk);
    write_i32(f, g + "/tokens/argmax", {T}, o.argmax, "token id", "argmax at every perplexity position (ties -> lower id)",
              kTokenChunk);
    f.write_uint8(g + "/tokens/same_top1", {T}, c.same_top1.data(), kTokenChunk);
    annotate(f, g + "/tokens/same_top1", "bool", "1 where argmax equals the base argmax (baseline/argmax)");
    std::vector<float> dp(c.dp.begin(), c.dp.end());
    f.write_float(g + "/tokens/dp", {T}, dp.data(), kTokenChunk);
    annotate(f, g + "/tokens/dp", "probability", "p(correct token) minus the base model's p(correct token)");
    write_f64(f, g + "/tokens/kl", {static_cast<int64_t>(o.kl.size())}, o.kl, "nats",
              "KL(base || compressed) of the next-token distribution at the first kept_tokens positions", kTokenChunk);
  }
  write_i32(f, g + "/prompts/fdt", {P}, c.fdt, "tokens",
            "first divergent token: first continuation position whose teacher-forced argmax differs from the base "
            "greedy continuation (N if none)");
  write_f64(f, g + "/prompts/sdt", {P}, c.sdt, "1", "share of divergent tokens among the N continuation positions");
  write_i32(f, g + "/prompts/tf_argmax", {P, N}, o.tf_argmax, "token id",
            "teacher-forced argmax on BOS + prompt + base continuation at the N continuation positions");
  const auto mean = mc_mean_logprob(set, o.mc_logprob);
  write_f64(f, g + "/mc/logprob_sum", {static_cast<int64_t>(o.mc_logprob.size())}, o.mc_logprob, "nats",
            "sum of log p of each choice's tokens after BOS + context");
  write_f64(f, g + "/mc/logprob_mean", {static_cast<int64_t>(mean.size())}, mean, "nats", "logprob_sum / choice tokens");
  write_i32(f, g + "/mc/pred_sum", {size_of(c.pred_sum)}, c.pred_sum, "choice index", "prediction by logprob_sum");
  write_i32(f, g + "/mc/pred_mean", {size_of(c.pred_mean)}, c.pred_mean, "choice index", "prediction by logprob_mean");
  write_summary(f, g + "/summary", c.summary, false);
  f.set_attr(g, "complete", int64_t{1});
  f.close();
}

Summary RunArchive::read_plan_summary(const std::string& id) const {
  H5File f = open_archive_read(*this);
  const std::string g = "plans/" + id + "/summary";
  Summary out;  // empty when the plan has no summary group
  for (const SummaryMetricInfo& m : kSummaryMetrics) {
    const std::string name = g + "/" + m.name;
    if (f.exists(name)) out.set(m.metric, f.read_double(name)[0]);
  }
  return out;
}

std::string RunArchive::read_plan_yaml(const std::string& id) const {
  return open_archive_read(*this).attr_string("plans/" + id, "plan_yaml");
}

}  // namespace divprune

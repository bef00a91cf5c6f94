// The `heal` stage: LayerChop's continued pretraining of compressed plans (issue 18). For each plan it names
// (explicit plans, plans already under /plans by id, the search's best plan or its Pareto front), it trains the
// plan's working copy on a training text (src/train: heal()), data-parallel over the replicas of the MPI world
// (tp = 1 only), then evaluates the healed model like any plan against the base outputs (the evaluate stage's
// code, evaluate_plan_entries with the healed weights installed) and archives it as its own /plans/<id> plus
// /heal/<id> (parent plan, settings, loss curve; src/archive/heal_archive.hpp). The parent plans are evaluated
// too (skipped when complete), so the archive holds the before and after of every healed plan.
//
// Identity. A healed model's hash is sha256 of its parent's canonical plan YAML, the canonical training settings
// (heal_settings_yaml) and the sha256 of the training token ids: the same plan healed with other settings or on
// another text is another /plans entry; a rerun with the same ones skips it when complete.
//
// Resumption. Every `checkpoint_every` steps and after the last step the coordinator writes the trainer's state
// (parameters, AdamW moments, step, loss curve) to <archive>.heal-<id>.ckpt (src/train/train_checkpoint.hpp); a
// rerun resumes from it and, the windows and learning rates being functions of the step, ends with the weights
// and curve of an uninterrupted run, bit for bit. The file is removed once the healed plan is archived.
//
// Quantized components: trained in fp32 from their pruned values and re-quantized with the plan's operator after
// the last step (train/heal.hpp), so a healed int8 plan is again on each row's int8 grid.
#include "pipelines/heal.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <type_traits>

#include <yaml-cpp/yaml.h>

#include "archive/heal_archive.hpp"
#include "archive/search_archive.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "core/input_file.hpp"
#include "core/mpi_communicator.hpp"
#include "core/sha256.hpp"
#include "core/stop_signal.hpp"
#include "metrics/eval_data.hpp"
#include "model/tokenizer.hpp"
#include "pipelines/stage.hpp"
#include "train/heal.hpp"
#include "train/train_checkpoint.hpp"

namespace divprune {

double mean_window_loss(const ModelConfig& config, const HostWeights& weights, const std::vector<bool>& removed,
                        const std::vector<int32_t>& tokens, int64_t seq_len) {
  if (tokens.empty()) return NAN;
  const train::ParamLayout layout = train::make_param_layout(config, removed);
  const std::vector<float> params = train::pack_params(layout, weights);
  train::TrainModel<float> model(layout);
  double sum = 0.0;
  int64_t n = 0;
  for (size_t at = 0; at < tokens.size(); at += static_cast<size_t>(seq_len)) {
    const size_t end = std::min(tokens.size(), at + static_cast<size_t>(seq_len));
    std::vector<int32_t> window = {config.bos_id};
    window.insert(window.end(), tokens.begin() + static_cast<std::ptrdiff_t>(at),
                  tokens.begin() + static_cast<std::ptrdiff_t>(end));
    sum += model.loss(window, params);
    n += static_cast<int64_t>(end - at);
  }
  return sum / static_cast<double>(n);
}

HealText split_heal_text(std::vector<int32_t> stream, int64_t heldout_tokens) {
  HealText t;
  t.heldout.assign(stream.end() - heldout_tokens, stream.end());
  stream.resize(stream.size() - static_cast<size_t>(heldout_tokens));
  t.train = std::move(stream);
  t.sha256 = sha256_hex(
      std::string_view(reinterpret_cast<const char*>(t.train.data()), t.train.size() * sizeof(int32_t)));
  return t;
}

std::string healed_plan_hash(const std::string& parent_yaml, const std::string& settings_yaml,
                             const std::string& text_sha256) {
  return sha256_hex(parent_yaml + "---\nheal:\n" + settings_yaml + "text_tokens_sha256: " + text_sha256 + "\n");
}

HealSettings heal_settings_from_yaml(const std::string& yaml, const std::string& where) {
  YAML::Node n;
  try {
    n = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw InputError(fmt::format("{}: the heal settings are not YAML: {}", where, e.what()));
  }
  HealSettings s;
  train::TrainSettings& t = s.train;
  auto get = [&](const char* key, auto& value) {
    if (!n[key]) throw InputError(fmt::format("{}: the heal settings lack the key \"{}\"", where, key));
    value = n[key].as<std::remove_reference_t<decltype(value)>>();
  };
  get("steps", t.steps);
  get("batch", t.batch_sequences);
  get("seq_len", t.seq_len);
  get("lr", t.lr);
  get("min_lr", t.min_lr);
  get("warmup", t.warmup_steps);
  get("weight_decay", t.weight_decay);
  get("clip", t.clip_norm);
  get("beta1", t.beta1);
  get("beta2", t.beta2);
  get("adam_eps", t.adam_eps);
  get("seed", t.seed);
  get("grad_groups", t.grad_groups);
  get("max_text_tokens", s.max_text_tokens);
  get("heldout_tokens", s.heldout_tokens);
  // The settings are part of the healed plan's id: they must print back to the very text they were read from.
  const std::string back = heal_settings_yaml(s, t.grad_groups);
  if (back != yaml)
    throw InputError(fmt::format("{}: the heal settings do not read back to their canonical text (found:\n{}\n"
                                 "expected:\n{})",
                                 where, yaml, back));
  return s;
}

namespace {

// A plan to heal, as every rank sees it.
struct Parent {
  PlanEntry entry;
  std::string id;  // its plan id (the id of its canonical YAML)
};

void broadcast_entry(PlanEntry& e) {
  broadcast_string(e.name);
  broadcast_string(e.source);
  broadcast_string(e.yaml);
  broadcast_string(e.where);
}

}  // namespace

HealSettings read_heal_settings(const RunConfig& config) {
  HealSettings s;
  const ConfigNode node = config.root["heal"].check_keys(
      {"plans", "from", "text", "max_text_tokens", "heldout_tokens", "steps", "tokens", "seq_len", "batch", "lr",
       "min_lr", "warmup", "weight_decay", "clip", "seed", "grad_groups", "checkpoint_every"});
  if (!node.present()) throw InputError(fmt::format("{}: the heal stage needs a `heal` section", config.file.string()));
  const ConfigNode plans = node["plans"];
  if (plans.present() && !plans.is_sequence())
    plans.fail("must be a list of plan files, `base`, {name, file | plan} or {id: <plan id>, name}");
  for (size_t i = 0; i < plans.size(); ++i) {
    const ConfigNode p = plans[i];
    if (p.is_map() && p["id"].present()) {
      p.check_keys({"id", "name"});
      s.plan_ids.push_back(p.get<std::string>("id"));
      s.plan_id_names.push_back(p.get<std::string>("name", s.plan_ids.back()));
    } else {
      s.plans.push_back(parse_plan_entry(p, i));
    }
  }
  const ConfigNode from = node["from"];
  std::vector<ConfigNode> sources = from.is_sequence() ? from.elements() : std::vector<ConfigNode>{};
  if (from.is_scalar()) sources.push_back(from);
  for (const ConfigNode& f : sources) {
    const std::string v = f.is_scalar() ? f.as<std::string>() : "";
    if (v == "search_best") s.from_search_best = true;
    else if (v == "pareto") s.from_pareto = true;
    else f.fail(fmt::format("expected search_best or pareto, found \"{}\"", v));
  }
  if (s.plans.empty() && s.plan_ids.empty() && !s.from_search_best && !s.from_pareto)
    node.fail("names no plan: give heal.plans and/or heal.from (search_best, pareto)");

  const ConfigNode text = node["text"];
  if (!text.present()) node.fail("missing key \"text\": the training text (e.g. ${assets}/wikitext2.valid.txt)");
  s.text = node.get_path("text");
  if (!std::filesystem::is_regular_file(s.text)) text.fail(fmt::format("{} is not a file", s.text.string()));
  if (same_file(s.text, config.ppl_text))
    text.fail(fmt::format("{} is also data.perplexity.text: training on the evaluation text would measure "
                          "memorisation; train on another text (e.g. wikitext2.valid.txt)",
                          s.text.string()));
  auto at_least = [&](std::string_view key, int64_t fallback, int64_t minimum) {
    const int64_t v = node.get<int64_t>(key, fallback);
    if (v < minimum) node[key].fail(fmt::format("must be at least {}, got {}", minimum, v));
    return v;
  };
  auto positive = [&](std::string_view key, float fallback, bool zero_ok) {
    const double v = node.get<double>(key, fallback);
    if (!std::isfinite(v) || v < 0.0 || (!zero_ok && v == 0.0))
      node[key].fail(fmt::format("must be {} finite number, got {}", zero_ok ? "a non-negative" : "a positive", v));
    return static_cast<float>(v);
  };
  train::TrainSettings& t = s.train;
  t.steps = 20;
  t.batch_sequences = 4;
  t.seq_len = 128;
  t.lr = 3e-4f;
  t.min_lr = 3e-5f;
  t.warmup_steps = 2;
  s.max_text_tokens = at_least("max_text_tokens", s.max_text_tokens, 0);
  s.heldout_tokens = at_least("heldout_tokens", s.heldout_tokens, 0);
  t.seq_len = at_least("seq_len", t.seq_len, 1);
  t.batch_sequences = at_least("batch", t.batch_sequences, 1);
  if (node["steps"].present() && node["tokens"].present())
    node.fail("give either heal.steps or heal.tokens (the training budget), not both");
  s.tokens = at_least("tokens", 0, 0);
  t.steps = s.tokens > 0 ? (s.tokens + t.batch_sequences * t.seq_len - 1) / (t.batch_sequences * t.seq_len)
                         : at_least("steps", t.steps, 1);
  t.lr = positive("lr", t.lr, false);
  t.min_lr = positive("min_lr", t.min_lr, true);
  if (t.min_lr > t.lr) node["min_lr"].fail(fmt::format("must be at most lr ({}), got {}", t.lr, t.min_lr));
  t.warmup_steps = at_least("warmup", t.warmup_steps, 0);
  t.weight_decay = positive("weight_decay", t.weight_decay, true);
  t.clip_norm = positive("clip", t.clip_norm, true);
  t.seed = node.get<uint64_t>("seed", t.seed);
  t.grad_groups = at_least("grad_groups", 0, 0);
  if (t.grad_groups > 0 && t.batch_sequences % t.grad_groups != 0)
    node["grad_groups"].fail(fmt::format("must divide heal.batch ({}), got {}", t.batch_sequences, t.grad_groups));
  s.checkpoint_every = at_least("checkpoint_every", s.checkpoint_every, 1);
  return s;
}

std::string heal_settings_yaml(const HealSettings& s, int64_t grad_groups) {
  const train::TrainSettings& t = s.train;
  return fmt::format(
      "steps: {}\nbatch: {}\nseq_len: {}\nlr: {:.9g}\nmin_lr: {:.9g}\nwarmup: {}\nweight_decay: {:.9g}\nclip: {:.9g}\n"
      "beta1: {:.9g}\nbeta2: {:.9g}\nadam_eps: {:.9g}\nseed: {}\ngrad_groups: {}\nmax_text_tokens: {}\n"
      "heldout_tokens: {}\n",
      t.steps, t.batch_sequences, t.seq_len, t.lr, t.min_lr, t.warmup_steps, t.weight_decay, t.clip_norm, t.beta1,
      t.beta2, t.adam_eps, t.seed, grad_groups, s.max_text_tokens, s.heldout_tokens);
}

void run_heal_stage(StageContext& ctx) {
  const Topology& topo = ctx.topology;
  const ModelConfig& model = ctx.replica.config();
  HealSettings settings;
  world_step([&] {
    settings = read_heal_settings(ctx.config);
    if (topo.tp != 1)
      throw InputError(fmt::format("{}: heal: training supports tp = 1 only, found tp = {}: run with --tp 1 (the "
                                   "replicas train data-parallel)",
                                   ctx.config.file.string(), topo.tp));
  });
  const int64_t grad_groups = settings.train.grad_groups > 0 ? settings.train.grad_groups : topo.replicas;
  world_step([&] {
    if (settings.train.batch_sequences % grad_groups != 0 || grad_groups % topo.replicas != 0)
      throw InputError(fmt::format("{}: heal.batch {} must be a multiple of grad_groups {}, and grad_groups a multiple "
                                   "of the {} replicas",
                                   ctx.config.file.string(), settings.train.batch_sequences, grad_groups, topo.replicas));
  });
  settings.train.grad_groups = grad_groups;
  settings.train.bos_id = model.bos_id;
  const std::string settings_yaml = heal_settings_yaml(settings, grad_groups);

  // The plans: the configuration's, then those the archive names (on the coordinator, broadcast).
  std::vector<PlanEntry> entries = settings.plans;
  int64_t count = 0;
  world_step([&] {
    if (!topo.is_coordinator()) return;
    for (size_t i = 0; i < settings.plan_ids.size(); ++i) {
      const std::string& id = settings.plan_ids[i];
      if (!ctx.archive.plan_status().count(id))
        throw InputError(fmt::format("{}: heal.plans: no plan {} under /plans of {}", ctx.config.file.string(), id,
                                     ctx.archive.path().string()));
      entries.push_back(PlanEntry{settings.plan_id_names[i], "archive", ctx.archive.read_plan_yaml(id),
                                  "heal.plans (id " + id + ")"});
    }
    if (settings.from_search_best) {
      const auto best = read_search_best(ctx.archive);
      if (!best)
        throw InputError(fmt::format("{}: heal.from: search_best, but {} has no complete /search/best (run the "
                                     "search stage first)",
                                     ctx.config.file.string(), ctx.archive.path().string()));
      entries.push_back(PlanEntry{best->name, "search_best", best->yaml, "heal.from search_best"});
    }
    if (settings.from_pareto) {
      const auto pareto = read_search_pareto(ctx.archive);
      if (!pareto)
        throw InputError(fmt::format("{}: heal.from: pareto, but {} has no /search/pareto (run the search stage "
                                     "first)",
                                     ctx.config.file.string(), ctx.archive.path().string()));
      for (const std::string& id : pareto->ids)
        entries.push_back(PlanEntry{"pareto_" + id, "pareto", ctx.archive.read_plan_yaml(id), "heal.from pareto"});
    }
    count = static_cast<int64_t>(entries.size());
  });
  broadcast_value(count);
  entries.resize(static_cast<size_t>(count));
  for (PlanEntry& e : entries) broadcast_entry(e);

  // The parents, measured as they are (skipped when complete): the "before" of every healed plan.
  const std::vector<std::string> parent_ids = evaluate_plan_entries(ctx, entries, "heal (parent plans)", false);

  // The training text under the perplexity protocol's tokenisation; its last heldout_tokens are held out.
  std::vector<int32_t> stream;
  world_step([&] {
    if (!topo.is_coordinator()) return;
    stream = tokenize_corpus_prefix(Tokenizer(ctx.config.tokenizer), settings.text, settings.max_text_tokens);
    if (static_cast<int64_t>(stream.size()) < settings.heldout_tokens + settings.train.seq_len)
      throw InputError(fmt::format("{}: heal.text {}: {} tokens, fewer than heldout_tokens {} + one window of seq_len {}",
                                   ctx.config.file.string(), settings.text.string(), stream.size(),
                                   settings.heldout_tokens, settings.train.seq_len));
  });
  broadcast_vector(stream);
  HealText split = split_heal_text(std::move(stream), settings.heldout_tokens);
  stream = std::move(split.train);
  const std::vector<int32_t>& heldout = split.heldout;
  const std::string& text_sha = split.sha256;

  MpiCommunicator dp(MPI_COMM_WORLD);  // tp = 1: every rank is a replica
  for (size_t k = 0; k < entries.size(); ++k) {
    const PlanEntry& parent = entries[k];
    const ValidatedPlan plan = parse_plan(parent.yaml, model, parent.source == "inline" ? parent.where : parent.source, 1);
    const std::string parent_yaml = plan_to_yaml(canonical_plan(plan.plan()));
    const std::string hash = healed_plan_hash(parent_yaml, settings_yaml, text_sha);
    const std::string id = plan_id_from_hash(hash);
    const std::filesystem::path checkpoint_path = ctx.archive.path().string() + ".heal-" + id + ".ckpt";
    PlanEntry healed_entry{parent.name + "+heal", "heal of " + parent_ids[k], parent_yaml, parent.where};

    int32_t done = 0;
    std::optional<train::TrainCheckpoint> checkpoint;
    world_step([&] {
      if (!topo.is_coordinator()) return;
      const auto status = ctx.archive.plan_status();
      const auto it = status.find(id);
      done = it != status.end() && it->second && read_heal_record(ctx.archive, id) ? 1 : 0;
      if (done) spdlog::info("heal: {} [{}] is complete in the archive, skipped", healed_entry.name, id);
      else checkpoint = train::read_train_checkpoint(checkpoint_path, hash);
    });
    broadcast_value(done);
    if (done) continue;

    // The checkpoint (if any) on every rank.
    train::HealHooks hooks;
    double seconds_before = 0.0;
    int32_t resume = checkpoint ? 1 : 0;
    broadcast_value(resume);
    if (resume) {
      if (!checkpoint) checkpoint.emplace();
      train::TrainerState& st = checkpoint->resume.state;
      broadcast_value(st.step);
      broadcast_vector(st.params);
      broadcast_vector(st.m);
      broadcast_vector(st.v);
      broadcast_vector(checkpoint->resume.curve);
      broadcast_value(checkpoint->seconds);
      seconds_before = checkpoint->seconds;
      hooks.resume = checkpoint->resume;
      if (topo.is_coordinator())
        spdlog::info("heal: {} [{}] resumes from {} after step {} of {}", healed_entry.name, id,
                     checkpoint_path.string(), st.step, settings.train.steps);
    }
    checkpoint.reset();
    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    hooks.after_step = [&](const train::Trainer& trainer, const std::vector<train::StepStats>& curve) {
      const int64_t step = trainer.step_index();
      if (topo.is_coordinator())
        spdlog::info("heal: {} step {}/{}: loss {:.4f}, grad norm {:.3f}, lr {:.3e}", healed_entry.name, step,
                     settings.train.steps, curve.back().loss, curve.back().grad_norm, curve.back().lr);
      // A stop signal (Slurm preemption, time limit) is honoured between steps: checkpoint, then stop like the
      // work queue does (exit 75, requeue); the next start resumes from the checkpoint.
      int32_t stop = topo.is_coordinator() && stop_requested() ? 1 : 0;
      broadcast_value(stop);
      const bool last = step == settings.train.steps;
      if (step % settings.checkpoint_every != 0 && !last && !stop) return;
      world_step([&] {
        if (!topo.is_coordinator()) return;
        train::TrainCheckpoint c;
        c.resume.state = trainer.state();
        c.resume.curve = curve;
        c.seconds = elapsed();
        train::write_train_checkpoint(checkpoint_path, hash, c);
        spdlog::info("heal: {} checkpoint after step {} ({})", healed_entry.name, step, checkpoint_path.string());
      });
      note_progress();  // a resumed run starts after this step
      if (stop && !last)
        throw StopRequested(fmt::format("stop requested: heal of {} checkpointed after step {} of {}",
                                        healed_entry.name, step, settings.train.steps));
    };
    // Not a world_step: heal() is collective by itself (its inputs were checked above, on every rank alike), and a
    // StopRequested from after_step must reach `divprune run` as it is.
    std::optional<train::HealResult> healed = train::heal(model, ctx.replica.pristine(), plan, stream, settings.train, dp, hooks);
    const double seconds = elapsed();

    // The healed model, measured like any plan.
    PlanWeightsOverride install;
    install.hashes = {hash};
    install.install = [&](ModelReplica& replica, size_t) {
      DeviceWeights w = upload_weights(replica.backend(), healed->weights);
      for (size_t l = 0; l < w.layers.size(); ++l) w.layers[l].removed = healed->removed[l];
      replica.model().weights() = std::move(w);
    };
    evaluate_plan_entries(ctx, {healed_entry}, "heal", false, &install);

    world_step([&] {
      if (!topo.is_coordinator()) return;
      HealRecord r;
      r.id = id;
      r.parent_id = parent_ids[k];
      r.name = healed_entry.name;
      r.settings_yaml = settings_yaml;
      r.text = settings.text.string();
      r.text_sha256 = text_sha;
      r.text_tokens = static_cast<int64_t>(stream.size());
      r.heldout_tokens = settings.heldout_tokens;
      const HostWeights parent_weights = train::plan_working_copy(model, ctx.replica.pristine(), plan);
      r.heldout_loss_parent = mean_window_loss(model, parent_weights, healed->removed, heldout, settings.train.seq_len);
      r.heldout_loss_healed = mean_window_loss(model, healed->weights, healed->removed, heldout, settings.train.seq_len);
      r.seconds = seconds;
      int64_t tokens = 0;
      for (const train::StepStats& e : healed->curve) {
        r.loss.push_back(e.loss);
        r.grad_norm.push_back(e.grad_norm);
        r.lr.push_back(e.lr);
        r.tokens.push_back(e.tokens);
        tokens += e.tokens;
      }
      r.tokens_per_second = seconds > 0.0 ? static_cast<double>(tokens) / seconds : 0.0;
      write_heal_record(ctx.archive, r);
      std::filesystem::remove(checkpoint_path);
      spdlog::info("healed plan {} [{}] from {}: loss {:.4f} -> {:.4f} over {} steps ({:.2f} s/step, {:.0f} tokens/s); "
                   "held-out loss {:.4f} -> {:.4f}",
                   r.name, id, r.parent_id, r.loss.front(), r.loss.back(), r.loss.size(),
                   seconds / static_cast<double>(r.loss.size()), r.tokens_per_second, r.heldout_loss_parent,
                   r.heldout_loss_healed);
    });
  }
}

}  // namespace divprune

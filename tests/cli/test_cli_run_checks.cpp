// `divprune run` validates before it works and says why it cannot (issue 14 items 6 and 8), and archives a plan
// whose compressed model overflows as failed instead of as numbers (item 3). Few, small processes: every case
// but two is refused before the model is loaded.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <map>

#include "archive/h5.hpp"
#include "archive/plan_failure.hpp"
#include "archive/search_archive.hpp"
#include "core/sha256.hpp"
#include "tests/cli/cli_util.hpp"

namespace divprune::test {
namespace {

std::string file_sha256(const fs::path& path) { return sha256_hex(read_file(path)); }

// A tiny baseline + evaluate configuration: one 16-token chunk, one prompt, no multiple choice.
std::string run_yaml(const fs::path& model, const fs::path& archive, const std::string& plans) {
  const fs::path a = assets_dir();
  return "model: " + model.string() + "\ntokenizer: " + (a / "llama2-tokenizer.model").string() +
         "\narchive: " + archive.string() + "\nstages: [baseline, evaluate]\ndata:\n" +
         "  perplexity: {text: " + (a / "wikitext2.test.txt").string() + ", ctx: 16, max_chunks: 2}\n" +
         "  logprobs: {store: full, max_tokens: 16}\n" +
         "  prompts: {text: " + (a / "wikitext2.valid.txt").string() + ", count: 2, tokens: 4, continuation: 4}\n" +
         "evaluate:\n  plans:\n" + plans;
}

fs::path write_text(const fs::path& path, const std::string& text) {
  write_file(path, text);
  return path;
}

TEST(CliRunChecks, RejectedRunLeavesTheArchiveUntouched) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  TempDir tmp;
  const fs::path mha = assets_dir() / "tiny-llama2-mha", archive = tmp / "a.h5";
  const fs::path good = write_text(tmp / "good.yaml", run_yaml(mha, archive, "    - base\n"));
  const CommandResult first = run_cli("run -q --threads 1 " + quote(good));
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  const std::string sha = file_sha256(archive);

  // A plan file that does not validate: before, the model was loaded, the root attributes rewritten with this
  // configuration and a second /runs record left unfinished; on a fresh path the whole baseline was computed.
  const fs::path bad_plan =
      write_text(tmp / "bad-plan.yaml", "components:\n  - {layers: all, names: [q], prune: {method: magnitude, sparsity: 1.5}}\n");
  const std::string plans = "    - base\n    - " + bad_plan.string() + "\n";
  expect_one_error_line(run_cli("run -q --threads 1 " + quote(write_text(tmp / "bad.yaml", run_yaml(mha, archive, plans)))),
                        {bad_plan.string(), "sparsity 1.5 is outside [0, 1)"});
  EXPECT_EQ(file_sha256(archive), sha);
  const fs::path fresh = tmp / "new" / "fresh.h5";
  expect_one_error_line(run_cli("run -q --threads 1 " + quote(write_text(tmp / "bad-fresh.yaml", run_yaml(mha, fresh, plans)))),
                        {bad_plan.string()});
  EXPECT_FALSE(fs::exists(fresh));
  EXPECT_FALSE(fs::exists(fresh.string() + ".lock"));

  // An archive of another model: refused from its root attributes, read-only, before the model is loaded.
  expect_one_error_line(
      run_cli("run -q --threads 1 " + quote(good) + " --set model=" + quote(assets_dir() / "tiny-llama2-trained")),
      {archive.string(), "the archive was made with another model"});
  EXPECT_EQ(file_sha256(archive), sha);

  // Archives HDF5 cannot open, each with its reason (before: "cannot open as an HDF5 file" for all of them).
  auto refused = [&](const fs::path& path, const std::string& reason) {
    const std::string before = file_sha256(path);
    expect_one_error_line(run_cli("run -q --threads 1 " + quote(good) + " --set archive=" + quote(path)),
                          {path.string() + ": cannot open as an HDF5 file: " + reason});
    EXPECT_EQ(file_sha256(path), before) << path;
    EXPECT_FALSE(fs::exists(path.string() + ".lock")) << path;
  };
  write_prefix(archive, tmp / "truncated.h5", 4096);
  refused(tmp / "truncated.h5", "truncated or corrupt: the HDF5 signature is there");
  refused(write_text(tmp / "text.h5", "not an archive\n"), "not an HDF5 file (no HDF5 signature)");
  fs::copy_file(archive, tmp / "locked.h5");
  {
    // Another process holding the file the way HDF5 does (flock, exclusive: open for writing).
    const int fd = ::open((tmp / "locked.h5").c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0) << std::strerror(errno);
    refused(tmp / "locked.h5", "locked by another process (HDF5 file locking)");
    ::close(fd);
  }
  if (::geteuid() != 0) {  // root writes whatever the permissions say
    fs::copy_file(archive, tmp / "readonly.h5");
    fs::permissions(tmp / "readonly.h5", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    refused(tmp / "readonly.h5", "read-only: no permission to write it");
  }
}

TEST(CliRunChecks, SearchBudgetErrorsNameTheConfigurationKeys) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  TempDir tmp;
  const fs::path cfg = write_text(
      tmp / "search.yaml", run_yaml(assets_dir() / "tiny-llama2-mha", tmp / "a.h5", "    - base\n") +
                               "space:\n  sparsity_levels: [0.0, 0.5]\n  methods: [magnitude]\n"
                               "  budget: {sparsity: 1.5, tolerance: 0.01}\n");
  // Before: "search.budget: sparsity 1.5 ± 0.01 is not a valid target" (no such key; no file named).
  expect_one_error_line(run_cli("run -q --check-config " + quote(cfg) + " --set 'stages=[baseline, sample]'"),
                        {cfg.string() + ": space.budget: sparsity must be in [0, 1)", "found sparsity 1.5"});
}

// A 3-layer float32 checkpoint (hidden 16, 2 heads, vocab of the Llama-2 tokenizer, tied embeddings) with a
// "massive activation" as trained LLMs have them: layer 0's attention writes 2e38 into channel 1 of the residual
// stream of every token, layer 1's takes 1e38 away, layer 2's adds `last_write` (1.5e38). Every weight is finite
// and so are the base model's outputs (the final RMSNorm scales the residual back), but a plan that removes layer
// 1 leaves 2e38 + 1.5e38 > FLT_MAX in layer 2: the residual overflows and the logits are NaN. Attention reads a
// channel that is the same for every token (q = k = 0, v from that channel), so each write is exact.
void write_massive_activation_model(const fs::path& dir, float last_write = 1.5e38f) {
  constexpr int64_t C = 16, L = 3, V = 32000;
  fs::create_directories(dir);
  write_file(dir / "config.json",
             R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000, "hidden_size": 16,
 "intermediate_size": 16, "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 2,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": true,
 "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32", "hidden_act": "silu"})");
  Safetensors st;
  st.header = nlohmann::ordered_json::object();
  auto add = [&](const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
    const size_t begin = st.data.size();
    st.data.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    st.header[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {begin, st.data.size()}}};
  };
  // Embeddings: channel 0 = 1, channel 1 = 0, the other 14 a token-dependent pattern scaled to a squared norm of
  // 15, so every token has RMS 1 and the same normalised channel 0.
  std::vector<float> embed(static_cast<size_t>(V * C), 0.0f);
  for (int64_t t = 0; t < V; ++t) {
    double norm = 0.0;
    for (int64_t j = 2; j < C; ++j) norm += std::pow(std::sin(0.37 * static_cast<double>(t) + 1.3 * static_cast<double>(j)) + 0.1, 2);
    for (int64_t j = 2; j < C; ++j)
      embed[static_cast<size_t>(t * C + j)] = static_cast<float>(
          (std::sin(0.37 * static_cast<double>(t) + 1.3 * static_cast<double>(j)) + 0.1) * std::sqrt(15.0 / norm));
    embed[static_cast<size_t>(t * C)] = 1.0f;
  }
  add("model.embed_tokens.weight", {V, C}, embed);
  const std::vector<float> ones(static_cast<size_t>(C), 1.0f), zeros(static_cast<size_t>(C * C), 0.0f);
  add("model.norm.weight", {C}, ones);
  // (channel v reads, o_proj weight): normalised channel 1 is ≈ sqrt(16) = 4 once the massive value dominates.
  const std::pair<int64_t, float> writes[L] = {{0, 2e38f}, {1, -1e38f / 4}, {1, last_write / 4}};
  for (int64_t l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    std::vector<float> v = zeros, o = zeros;
    v[static_cast<size_t>(writes[l].first)] = 1.0f;  // v[0] (head 0, dim 0) = normalised channel
    o[static_cast<size_t>(1 * C + 0)] = writes[l].second;  // residual channel 1 += weight * v[0]
    add(p + "input_layernorm.weight", {C}, ones);
    add(p + "post_attention_layernorm.weight", {C}, ones);
    add(p + "self_attn.q_proj.weight", {C, C}, zeros);
    add(p + "self_attn.k_proj.weight", {C, C}, zeros);
    add(p + "self_attn.v_proj.weight", {C, C}, v);
    add(p + "self_attn.o_proj.weight", {C, C}, o);
    add(p + "mlp.gate_proj.weight", {C, C}, zeros);
    add(p + "mlp.up_proj.weight", {C, C}, zeros);
    add(p + "mlp.down_proj.weight", {C, C}, zeros);
  }
  write_safetensors(dir / "model.safetensors", st);
}

TEST(CliRunChecks, PlanWithNonFiniteOutputsIsArchivedAsFailed) {
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  write_massive_activation_model(tmp / "massive");
  const fs::path archive = tmp / "a.h5";
  const fs::path cfg = write_text(
      tmp / "run.yaml", run_yaml(tmp / "massive", archive,
                                 "    - base\n    - {name: drop1, plan: {drop_layers: [1]}}\n"
                                 "    - {name: drop0, plan: {drop_layers: [0]}}\n"));
  // Before: exit 0, drop1 archived with ppl nan and FDT 0 (NaN logits have argmax 0), a training pair like any other.
  const CommandResult r = run_cli("run -q --threads 1 " + quote(cfg));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto failed_rows = lines_starting_with(r.out, "drop1");
  ASSERT_EQ(failed_rows.size(), 1u) << r.out;
  for (const std::string needle : {"failed: plan drop1 [", "non-finite NLL in perplexity chunk 0",
                                   "the MLP input of layer 2: layer 2's attention overflows"})
    EXPECT_NE(failed_rows[0].find(needle), std::string::npos) << failed_rows[0];

  std::map<std::string, std::string> id_of;
  {
    H5File f(archive, H5Mode::Read);
    for (const std::string& id : f.children("plans"))
      if (f.is_group("plans/" + id)) id_of[f.attr_string("plans/" + id, "name")] = id;
    EXPECT_EQ(f.attr_int("plans/" + id_of.at("drop1"), "complete"), 1);
    EXPECT_FALSE(f.exists("plans/" + id_of.at("drop1") + "/summary"));
  }
  const RunArchive run_archive(archive);
  const std::optional<std::string> reason = read_plan_failure(run_archive, id_of.at("drop1"));
  ASSERT_TRUE(reason.has_value());
  EXPECT_NE(reason->find("perplexity chunk 0"), std::string::npos) << *reason;
  EXPECT_FALSE(read_plan_failure(run_archive, id_of.at("drop0")).has_value());
  // The search's pairs: base and drop0 with finite values, not drop1.
  const std::vector<PlanPair> pairs = read_plan_pairs(run_archive, SummaryMetric::FdtMean);
  ASSERT_EQ(pairs.size(), 2u);
  for (const PlanPair& p : pairs) {
    EXPECT_NE(p.id, id_of.at("drop1"));
    EXPECT_TRUE(std::isfinite(p.value)) << p.name;
  }

  // A rerun does not redo the deterministic failure.
  const CommandResult again = run_cli("run --threads 1 " + quote(cfg));
  ASSERT_EQ(again.exit_code, 0) << describe(again);
  EXPECT_NE(again.err.find("plan drop1 [" + id_of.at("drop1") + "] is complete in the archive, skipped"), std::string::npos)
      << again.err;
  EXPECT_EQ(lines_starting_with(again.out, "drop1").size(), 1u) << again.out;

  // analysis/read_archive.py lists it as failed and its --check accepts the archive (skipped without h5py).
  if (run_command("/usr/bin/python3 -c 'import h5py' 2>/dev/null").exit_code == 0) {
    const CommandResult check = run_command("/usr/bin/python3 " + quote(fs::path(DIVPRUNE_SOURCE_DIR) / "analysis/read_archive.py") +
                                            " --check " + quote(archive));
    EXPECT_EQ(check.exit_code, 0) << describe(check);
    EXPECT_NE(check.out.find("failed plan drop1 [" + id_of.at("drop1") + "]: plan drop1"), std::string::npos) << check.out;
  }

  // A base model that overflows leaves nothing to compare with: bad input (before: exit 0 with "ppl -nan").
  write_massive_activation_model(tmp / "overflowing", 3e38f);
  expect_one_error_line(run_cli("run -q --threads 1 " + quote(cfg) + " --set model=" + quote(tmp / "overflowing") +
                                " --set archive=" + quote(tmp / "b.h5")),
                        {"baseline: the base model " + (tmp / "overflowing").string(),
                         "non-finite NLL in perplexity chunk 0"});
}

}  // namespace
}  // namespace divprune::test

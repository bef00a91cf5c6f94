// divprune export end to end (few processes: each start costs about 0.7 s of MPI initialisation; the
// int8/fp16, sharded and llama2.c cases run in-process in tests/compress/test_export.cpp): the exported
// directory's logits equal `divprune logits --plan` of the original exactly in fp32, `divprune info` reads it,
// tokenizer files travel along, and bad input exits 2 with one line and leaves nothing behind.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "archive/h5.hpp"
#include "model/safetensors.hpp"
#include "tests/cli/cli_util.hpp"

namespace divprune::test {
namespace {

const char* kMha = "tiny-llama2-mha";

std::vector<float> cli_logits(const fs::path& model, const std::string& plan, const fs::path& input, const fs::path& out) {
  const CommandResult r = run_cli("logits -q --model " + quote(model) + (plan.empty() ? "" : " --plan " + quote(plan)) +
                                  " --input " + quote(input) + " --out " + quote(out));
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  if (r.exit_code != 0) return {};
  return H5File(out, H5Mode::Read).read_float("logits");
}

CommandResult export_cli(const std::string& args) { return run_cli("export " + args); }

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_file(path)); }

// Files of a directory, sorted, for "nothing else was left behind" checks.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Layer 0 removed and the remaining layer 50% magnitude-pruned: fp32 export, logits bit-identical; the config is
// the input's with num_hidden_layers 1 and dtype float32; tokenizer files travel along; info reads it.
TEST(CliExport, Fp32DropLayerAndPruneMatchesPlanLogitsExactly) {
  ASSETS_OR_SKIP(std::string(kMha) + "/reference.h5");
  TempDir tmp;
  const fs::path model = copy_checkpoint_dir(assets_dir() / kMha, tmp / "model");
  write_file(model / "tokenizer.model", "not really a tokenizer\n");
  write_file(model / "tokenizer_config.json", "{\"add_bos_token\": true}\n");
  const fs::path plan = tmp / "plan.yaml";
  write_file(plan, "drop_layers: [0]\ncomponents:\n  - {layers: all, names: all, prune: {method: magnitude, sparsity: 0.5}}\n");
  const fs::path out = tmp / "export";
  const CommandResult r = export_cli("--model " + quote(model) + " --plan " + quote(plan) + " --out " + quote(out) +
                                     " --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(listing(out), (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.model",
                                                    "tokenizer_config.json"}));
  EXPECT_EQ(listing(tmp.path()), (std::vector<std::string>{"export", "model", "plan.yaml"}));  // no staging left
  EXPECT_EQ(read_file(out / "tokenizer.model"), "not really a tokenizer\n");

  nlohmann::json in_config = read_json(model / "config.json"), out_config = read_json(out / "config.json");
  EXPECT_EQ(out_config["num_hidden_layers"], 1);
  EXPECT_EQ(out_config["dtype"], "float32");
  EXPECT_FALSE(out_config.contains("torch_dtype"));  // the input uses the newer key only
  for (const char* key : {"num_hidden_layers", "dtype"}) {
    in_config.erase(key);
    out_config.erase(key);
  }
  EXPECT_EQ(out_config, in_config);  // everything else as the input had it
  SafetensorsFile weights(out / "model.safetensors");
  EXPECT_TRUE(weights.contains("model.layers.0.mlp.down_proj.weight"));
  EXPECT_FALSE(weights.contains("model.layers.1.mlp.down_proj.weight"));

  const fs::path input = assets_dir() / kMha / "reference.h5";
  const auto expected = cli_logits(model, plan.string(), input, tmp / "plan_logits.h5");
  const auto got = cli_logits(out, "", input, tmp / "export_logits.h5");
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(max_abs_diff(expected, got), 0.0f);
  EXPECT_EQ(expected, got);

  const CommandResult info = run_cli("info --model " + quote(out));
  ASSERT_EQ(info.exit_code, 0) << describe(info);
  EXPECT_NE(info.out.find("layers             1\n"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("dtype              float32\n"), std::string::npos) << info.out;
}

TEST(CliExport, BadInputExitsTwoAndLeavesNothing) {
  ASSETS_OR_SKIP(std::string(kMha) + "/config.json");
  TempDir tmp;
  const std::string model = quote(assets_dir() / kMha);
  const fs::path taken = tmp / "taken";
  fs::create_directories(taken);
  write_file(taken / "notes.txt", "mine\n");
  write_file(tmp / "bad_plan.yaml", "drop_layers: [4]\n");  // the model has 2 layers
  const std::string out = " --out " + quote(tmp / "new");
  struct Case {
    std::string args;
    std::vector<std::string> needles;
  };
  // The destination and size checks are covered in-process (tests/compress/test_export.cpp); here that the CLI
  // runs them before loading anything, its own --healed, and a bad plan leaving nothing behind.
  const std::vector<Case> cases = {
      {"--model " + model + " --out " + quote(taken), {taken.string(), "non-empty directory", "--force"}},
      {"--model " + model + out + " --healed runs/a.h5 p3", {"--healed needs --tokenizer"}},
      {"--model " + model + out + " --plan p.yaml --healed runs/a.h5 p3", {"either --plan or --healed"}},
      {"--model " + model + out + " --tokenizer t.model --healed runs/a.h5 p3", {"the archive", "runs/a.h5"}},
      {"--model " + model + out + " --plan " + quote(tmp / "bad_plan.yaml"), {"bad_plan.yaml", "drop_layers"}},
  };

  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const CommandResult r = export_cli(c.args);
    expect_one_error_line(r, c.needles);
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  EXPECT_EQ(listing(tmp.path()), (std::vector<std::string>{"bad_plan.yaml", "taken"}));
  EXPECT_EQ(listing(taken), (std::vector<std::string>{"notes.txt"}));
}

// Under mpirun every rank refuses alike: one line from rank 0, exit 2, nothing written.
TEST(CliExport, RefusedUnderMpi) {
  ASSETS_OR_SKIP("stories260K.bin");
  TempDir tmp;
  const CommandResult r = run_command(fmt::format("timeout 120 {} --oversubscribe --allow-run-as-root -np 2 {} export --model {} --out {}",
                                                  DIVPRUNE_MPIEXEC_PATH, quote(divprune_binary()),
                                                  quote(assets_dir() / "stories260K.bin"), quote(tmp / "out")));
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  const auto errors = lines_starting_with(r.err, "divprune: error: ");
  ASSERT_EQ(errors.size(), 1u) << describe(r);
  EXPECT_NE(errors[0].find("export runs as one process (found 2 MPI ranks)"), std::string::npos) << errors[0];
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

}  // namespace
}  // namespace divprune::test

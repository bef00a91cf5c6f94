// `divprune export --healed ARCHIVE PLAN_ID` (src/cli/cmd_export.cpp) on tiny-llama2-trained: a plan that removes a
// layer, prunes and quantizes is healed two steps by the heal stage, then exported from its /heal record (the
// weights rebuilt by training again). The exported Hugging Face directory (fp32) is the healed model bit for bit:
// its held-out loss, computed from the exported files alone, equals the one the heal stage archived from the
// weights it trained (heldout_loss_healed). A missing plan id and a changed training text exit 2 with one line.
#include <cblas.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "archive/heal_archive.hpp"
#include "metrics/eval_data.hpp"
#include "model/checkpoint.hpp"
#include "model/shard.hpp"
#include "model/tokenizer.hpp"
#include "model/weights.hpp"
#include "pipelines/heal.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

std::string heal_section(const std::string& text) {
  return chop_heal_section(text) +
         "  max_text_tokens: 1500\n"
         "  heldout_tokens: 128\n"
         "  steps: 2\n"
         "  seq_len: 32\n"
         "  batch: 2\n"
         "  warmup: 1\n";
}

TEST(HealExport, RebuildsTheHealedWeightsAndRefusesBadInput) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  ASSETS_OR_SKIP("wikitext2.valid.txt");
  const fs::path dir = temp_dir();
  const fs::path archive = dir / "run.h5", text = dir / "train.txt", out = dir / "healed-hf";
  fs::copy_file(assets_dir() / "wikitext2.valid.txt", text);  // a copy: changed below
  const auto cfg = write_config(dir, "run.yaml", search_config(archive, heal_section(text.string()), 32, 2));
  auto r = run_config(cfg, "--set stages=[baseline,heal]");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> ids = heal_record_ids(RunArchive(archive));
  ASSERT_EQ(ids.size(), 1u);
  const HealRecord record = *read_heal_record(RunArchive(archive), ids[0]);

  const fs::path model = assets_dir() / "tiny-llama2-trained", tokenizer = assets_dir() / "llama2-tokenizer.model";
  const std::string args = "export --model " + model.string() + " --tokenizer " + tokenizer.string() +
                           " --dtype fp32 --healed " + archive.string() + " ";
  r = run_divprune(args + ids[0] + " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("loss curve as archived"), std::string::npos) << r.err;

  // The exported model alone: one layer fewer, and the held-out loss of the healed weights, exactly.
  const std::unique_ptr<Checkpoint> exported = open_checkpoint(out);
  const ModelConfig& config = exported->config();
  EXPECT_EQ(config.num_layers, open_checkpoint(model)->config().num_layers - 1);
  const HostWeights weights = load_host_weights(*exported, make_shard_layout(config, TpShard{0, 1}));
  const HealText split = split_heal_text(tokenize_corpus_prefix(Tokenizer(tokenizer), text, 1500), 128);
  ASSERT_EQ(split.sha256, record.text_sha256);
  openblas_set_num_threads(1);  // as the heal stage measured it (a product's rounding depends on its thread count)
  const double loss = mean_window_loss(config, weights, std::vector<bool>(config.num_layers, false), split.heldout, 32);
  EXPECT_EQ(loss, record.heldout_loss_healed);
  EXPECT_LT(loss, record.heldout_loss_parent);
  std::printf("held-out loss: parent %.6f, healed (archived) %.6f, exported %.6f\n", record.heldout_loss_parent,
              record.heldout_loss_healed, loss);

  // Bad input: one error line, exit 2, nothing written.
  r = run_divprune(args + "0000000000000000 --out " + (dir / "x").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("no healed plan 0000000000000000 (complete /heal groups: " + ids[0] + ")"), std::string::npos)
      << r.err;
  EXPECT_EQ(count_in(r.err, "divprune: error:"), 1u) << r.err;
  {
    std::ifstream in(text);
    std::stringstream body;
    body << in.rdbuf();
    std::ofstream(text) << "A changed first line .\n" << body.str();
  }
  r = run_divprune(args + ids[0] + " --out " + (dir / "x").string());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("the training text " + text.string() + " has changed"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expected " + record.text_sha256 + ", found "), std::string::npos) << r.err;
  EXPECT_EQ(count_in(r.err, "divprune: error:"), 1u) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

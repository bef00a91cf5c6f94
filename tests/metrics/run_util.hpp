#pragma once
// Helpers of the `divprune run` tests: a small evaluation configuration on tiny-llama2-trained, running the
// binary (also under mpirun) and reading plans back from the archive.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "archive/archive.hpp"
#include "archive/h5.hpp"
#include "tests/parallel/mpirun.hpp"
#include "tests/support/assets.hpp"

namespace divprune::test {

namespace fs = std::filesystem;

inline const std::string kSource = DIVPRUNE_SOURCE_DIR;

inline fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / ("divprune-run-" + std::string(info->name()) + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// A small evaluation set: `chunks` chunks of `ctx` tokens (the first `kept` tokens keep base log-probs),
// 3 prompts x 8 greedy tokens, 3 next-sentence items x 3 choices.
inline std::string config(const fs::path& archive, const std::string& plans, int ctx = 32, int chunks = 3, int kept = 64,
                   const std::string& store = "full", int prompts = 3) {
  std::ostringstream c;
  c << "assets: " << assets_dir().string() << "\n"
    << "model: ${assets}/tiny-llama2-trained\n"
    << "tokenizer: ${assets}/llama2-tokenizer.model\n"
    << "archive: " << archive.string() << "\n"
    << "stages: [baseline, evaluate]\n"
    << "data:\n"
    << "  perplexity:\n    text: ${assets}/wikitext2.test.txt\n    ctx: " << ctx << "\n    max_chunks: " << chunks << "\n"
    << "  logprobs:\n    store: " << store << "\n    top_k: 32\n    max_tokens: " << kept << "\n"
    << "  prompts:\n    text: ${assets}/wikitext2.valid.txt\n    count: " << prompts << "\n    tokens: 12\n    continuation: 8\n"
    << "  multiple_choice:\n    build:\n      text: ${assets}/wikitext2.valid.txt\n      items: 3\n      choices: 3\n"
    << "      max_words: 16\n"
    << "evaluate:\n  plans:\n" << plans;
  return c.str();
}

inline const std::string kPlans =
    "    - base\n"
    "    - " + kSource + "/configs/plans/magnitude50_all.yaml\n"
    "    - name: magnitude10_all\n"
    "      plan:\n"
    "        components:\n"
    "          - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.1}}\n"
    "    - " + kSource + "/configs/plans/drop_layer4.yaml\n";

inline fs::path write_config(const fs::path& dir, const std::string& name, const std::string& text) {
  std::ofstream(dir / name) << text;
  return dir / name;
}

inline CommandResult run_config(const fs::path& cfg, const std::string& extra = "", int ranks = 0, int tp = 1) {
  const std::string args = " run " + cfg.string() + " --threads 1 --tp " + std::to_string(tp) + " " + extra;
  if (ranks == 0) return run_divprune(args);
  return run_command(mpirun(ranks) + divprune_binary() + args);
}

// Plan id by name from the archive.
inline std::map<std::string, std::string> plan_ids(const fs::path& archive) {
  H5File f(archive, H5Mode::Read);
  std::map<std::string, std::string> out;
  for (const std::string& id : f.children("plans"))
    if (f.is_group("plans/" + id)) out[f.attr_string("plans/" + id, "name")] = id;
  return out;
}

}  // namespace divprune::test

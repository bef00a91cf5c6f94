// Bad input through the binary: exit code 2, exactly one stderr line `divprune: error: ...` naming the file
// and the problem, nothing on stdout, no output file left behind.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "archive/h5.hpp"
#include "tests/cli/cli_util.hpp"
#include "tests/model/broken_inputs.hpp"

namespace divprune::test {
namespace {

class CliBadCheckpoint : public ::testing::TestWithParam<size_t> {};

TEST_P(CliBadCheckpoint, ExitsTwoWithOneLineNamingTheFile) {
  const BrokenCase& c = broken_cases()[GetParam()];
  ASSETS_OR_SKIP(c.asset);
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  TempDir tmp;
  const BrokenInput input = c.make(tmp.path());
  // `info` only opens the checkpoint; `logits` also loads the weights.
  if (!input.needs_weights) {
    const CommandResult info = run_cli("info --model " + quote(input.model));
    expect_one_error_line(info, {input.file.string(), input.problem});
    EXPECT_TRUE(info.out.empty()) << info.out;
  } else {
    const CommandResult info = run_cli("info --model " + quote(input.model));
    EXPECT_EQ(info.exit_code, 0) << describe(info);
  }
  const fs::path out = tmp / "logits.h5";
  const CommandResult logits = run_cli("logits --model " + quote(input.model) + " --input " +
                                            quote(assets_dir() / "tiny-llama2-mha/reference.h5") + " --out " + quote(out));
  expect_one_error_line(logits, {input.file.string(), input.problem});
  EXPECT_TRUE(logits.out.empty()) << logits.out;
  EXPECT_FALSE(fs::exists(out));
}

INSTANTIATE_TEST_SUITE_P(Cases, CliBadCheckpoint, ::testing::Range<size_t>(0, broken_cases().size()), broken_case_name);

TEST(CliBadArguments, MissingOrBrokenSideFiles) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  const std::string model = quote(mha_dir());
  const std::string tokenizer = quote(assets_dir() / "llama2-tokenizer.model");
  const std::string missing = (tmp / "missing.h5").string();
  expect_one_error_line(run_cli("logits --model " + model + " --input " + quote(missing) + " --out " +
                                     quote(tmp / "o.h5")),
                        {missing, "no such file"});
  write_file(tmp / "not-hdf5.h5", "plain text");
  expect_one_error_line(run_cli("logits --model " + model + " --input " + quote(tmp / "not-hdf5.h5") +
                                     " --out " + quote(tmp / "o.h5")),
                        {(tmp / "not-hdf5.h5").string(), "cannot open as an HDF5 file"});
  const std::string text = (tmp / "missing.txt").string();
  expect_one_error_line(run_cli("perplexity --model " + model + " --tokenizer " + tokenizer + " --text " + quote(text)),
                        {text, "cannot open text file"});
  write_file(tmp / "blank.txt", "\n   \n");
  expect_one_error_line(run_cli("perplexity --model " + model + " --tokenizer " + tokenizer + " --text " +
                                     quote(tmp / "blank.txt")),
                        {(tmp / "blank.txt").string(), "every line is blank"});
  write_file(tmp / "bad.model", "not a sentencepiece model");
  expect_one_error_line(run_cli("generate -q --model " + model + " --tokenizer " + quote(tmp / "bad.model") +
                                     " --prompt hello"),
                        {(tmp / "bad.model").string(), "not a SentencePiece model"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1,x,3"), {"--prompt-ids", "\"x\""});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1,40000"),
                        {"token id 40000", mha_dir().string()});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 -n 600"), {"exceeds the model's context 512"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt hello"), {"--prompt needs --tokenizer"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 --tp 3"), {"--tp 3"});
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 --backend tpu"), {"--backend"});
}

// Issue 14: arguments that used to wrap, abort after the work was done, or trip an internal assertion.
TEST(CliBadArguments, OutOfRangeNumbersAndEmptyInput) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  TempDir tmp;
  const std::string model = quote(mha_dir());
  // 4294967297 = 2^32 + 1 used to wrap to token 1.
  expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1,4294967297"),
                        {"--prompt-ids", "4294967297 is out of range"});
  // 100000 threads used to spawn 100000 workers and abort at exit; negative counts were accepted.
  for (const char* threads : {"100000", "-1", "1025"})
    expect_one_error_line(run_cli("generate -q --model " + model + " --prompt-ids 1 --threads " + threads),
                          {"--threads", std::string("Value ") + threads + " not in range 0 to 1024"});
  const CommandResult help = run_cli("generate --help");
  EXPECT_NE(help.out.find("0 to 1024"), std::string::npos) << help.out;
  // input_ids [2, 0]: no token to score (used to trip an internal assertion, exit 1).
  {
    H5File in(tmp / "empty.h5", H5Mode::Truncate);
    const int32_t none = 0;
    in.write_int32("input_ids", {2, 0}, &none);
    in.close();
  }
  expect_one_error_line(run_cli("logits --model " + model + " --input " + quote(tmp / "empty.h5") + " --out " +
                                quote(tmp / "o.h5")),
                        {(tmp / "empty.h5").string(), "at least one sequence of at least one token, found [2, 0]"});
  EXPECT_FALSE(fs::exists(tmp / "o.h5"));
}

// Issue 14, item 5: a FIFO named as any input used to hang forever on open. Each is refused before it is opened
// (the 60 s limit turns a hang into a failure instead of a stalled CI).
TEST(CliBadArguments, FifoInputsAreRefused) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  const fs::path fifo = tmp / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string model = quote(mha_dir());
  const std::string tokenizer = quote(assets_dir() / "llama2-tokenizer.model");
  const std::string reference = quote(assets_dir() / "tiny-llama2-mha/reference.h5");
  const std::vector<std::pair<std::string, std::string>> commands = {
      {"perplexity --model " + model + " --tokenizer " + tokenizer + " --text " + quote(fifo), "text file"},
      {"perplexity --model " + model + " --tokenizer " + quote(fifo) + " --text " + quote(fifo), "the tokenizer model"},
      {"logits --model " + model + " --input " + quote(fifo) + " --out " + quote(tmp / "o.h5"), "the input file"},
      {"logits --model " + model + " --plan " + quote(fifo) + " --input " + reference + " --out " + quote(tmp / "o.h5"),
       "the plan file"},
      {"run " + quote(fifo), "the run configuration"},
  };
  for (const auto& [args, what] : commands) {
    SCOPED_TRACE(args);
    expect_one_error_line(run_cli(args, 60), {fifo.string(), "cannot open " + what, "not a regular file (a FIFO)"});
  }
  // A plan file named in a run configuration.
  write_file(tmp / "run.yaml", "model: " + mha_dir().string() + "\narchive: " + (tmp / "a.h5").string() +
                                   "\nstages: [evaluate]\nevaluate:\n  plans: [" + fifo.string() + "]\n");
  expect_one_error_line(run_cli("run " + quote(tmp / "run.yaml"), 60),
                        {fifo.string(), "cannot open the plan file named at", "not a regular file (a FIFO)"});
}

// Issue 14, items 4 and 8: an archive that cannot be a file gives exit 2 and one line, before the model is loaded
// (used to: exit 1 with a raw std::filesystem message; a segfault at exit for /dev/null).
TEST(CliBadArguments, ArchivePathThatCannotBeAFile) {
  ASSETS_OR_SKIP("tiny-llama2-mha/config.json");
  TempDir tmp;
  write_file(tmp / "run.yaml", "model: " + mha_dir().string() + "\narchive: " + (tmp / "a.h5").string() +
                                   "\nstages: [baseline]\n");
  write_file(tmp / "plain.txt", "a regular file");
  const std::string run = "run " + quote(tmp / "run.yaml") + " --set archive=";
  expect_one_error_line(run_cli(run + "/dev/null", 60), {"/dev/null: cannot write the archive", "(a character device)"});
  const fs::path under = tmp / "plain.txt" / "runs" / "a.h5";
  expect_one_error_line(run_cli(run + quote(under), 60),
                        {under.string(), (tmp / "plain.txt").string() + " is not a directory (a regular file)"});
  expect_one_error_line(run_cli(run + quote(tmp.path()), 60), {tmp.path().string(), "not a regular file (a directory)"});
  EXPECT_EQ(read_file(tmp / "plain.txt"), "a regular file");
  EXPECT_FALSE(fs::exists(tmp / "a.h5"));
}

// Issue 14, item 3: weights that are finite but overflow in the forward (model.norm.weight = 3e38, stored as F32)
// used to print "ppl nan" / write NaN logits with exit 0. Now: exit 2 naming the chunk (perplexity) or the row.
TEST(CliBadArguments, NonFiniteOutputsAreErrors) {
  ASSETS_OR_SKIP("tiny-llama2-mha/reference.h5");
  ASSETS_OR_SKIP("llama2-tokenizer.model");
  TempDir tmp;
  const fs::path dir = copy_checkpoint_dir(mha_dir(), tmp / "model");
  Safetensors st = read_safetensors(dir / "model.safetensors");
  const size_t end = st.data.size();
  st.header["model.norm.weight"] = nlohmann::ordered_json::object(
      {{"dtype", "F32"}, {"shape", nlohmann::json::array({64})}, {"data_offsets", nlohmann::json::array({end, end + 256})}});
  const std::vector<float> huge(64, 3e38f);
  st.data.append(reinterpret_cast<const char*>(huge.data()), 256);
  write_safetensors(dir / "model.safetensors", st);
  write_file(tmp / "text.txt", "The quick brown fox jumps over the lazy dog.\nAnother line of plain text.\n");
  const CommandResult ppl = run_cli("perplexity -q --model " + quote(dir) + " --tokenizer " +
                                    quote(assets_dir() / "llama2-tokenizer.model") + " --text " +
                                    quote(tmp / "text.txt") + " --ctx 8");
  expect_one_error_line(ppl, {(tmp / "text.txt").string(), "chunk 0 of", "has a non-finite NLL", dir.string()});
  EXPECT_TRUE(ppl.out.empty()) << ppl.out;
  const CommandResult logits = run_cli("logits -q --model " + quote(dir) + " --input " +
                                       quote(assets_dir() / "tiny-llama2-mha/reference.h5") + " --out " +
                                       quote(tmp / "o.h5"));
  expect_one_error_line(logits, {"gives a non-finite logit", "for input_ids[0, ", (tmp / "o.h5").string() + " not written"});
  EXPECT_FALSE(fs::exists(tmp / "o.h5"));
}

}  // namespace
}  // namespace divprune::test

// divprune merge: two worker archives evaluated from one baseline (2 plans each) merge into one archive with the 4
// plans, their metrics bit for bit, /runs renumbered, and read_archive.py --check passing; a copy of an input merges
// its plans once; bad inputs (another baseline, other metrics for the same plan, an existing --out) exit 2 with one
// line naming the file and what differs.
#include <gtest/gtest.h>

#include <cstring>

#include "tests/cli/cli_util.hpp"
#include "tests/metrics/run_util.hpp"

namespace divprune::test {
namespace {

std::string plan(const std::string& name, double sparsity) {
  return "    - {name: " + name + ", plan: {components: [{layers: all, names: [q, k, v, o, gate, up, down], prune: "
         "{method: magnitude, sparsity: " + std::to_string(sparsity) + "}}]}}\n";
}

void expect_same_summary(const fs::path& a, const fs::path& b, const std::string& id) {
  H5File fa(a, H5Mode::Read), fb(b, H5Mode::Read);
  const std::string g = "plans/" + id + "/summary";
  const auto names = fa.children(g);
  ASSERT_FALSE(names.empty()) << id;
  EXPECT_EQ(names, fb.children(g)) << id;
  for (const std::string& n : names) {
    const double x = fa.read_double(g + "/" + n)[0], y = fb.read_double(g + "/" + n)[0];
    EXPECT_EQ(std::memcmp(&x, &y, sizeof x), 0) << id << " " << n << ": " << x << " vs " << y;
  }
}

// The smallest evaluation set of tests/metrics/run_util.hpp that still has every metric: 2 chunks of ctx tokens,
// 32 kept, 2 prompts.
std::string small_config(const fs::path& archive, const std::string& plans, int ctx = 32) {
  return config(archive, plans, ctx, 2, 32, "full", 2);
}

CommandResult merge(const std::string& args) { return run_cli("merge " + args, 120); }

TEST(CliMerge, WorkerArchivesMergeIntoOne) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path base = dir / "base.h5", a = dir / "a.h5", b = dir / "b.h5";
  // The baseline once; each worker starts from a copy of it (the array recipe of slurm/array-evaluate.sbatch).
  ASSERT_EQ(run_config(write_config(dir, "base.yaml", small_config(base, plan("m10", 0.1))), "--set stages=[baseline]").exit_code, 0);
  fs::copy_file(base, a);
  fs::copy_file(base, b);
  // Two array tasks over one plan list: part 0 of 2 evaluates m10 and m30, part 1 m20 and m40.
  const std::string plans = plan("m10", 0.1) + plan("m20", 0.2) + plan("m30", 0.3) + plan("m40", 0.4);
  // A share outside the parts: refused when the config is read.
  const auto part_bad = run_config(write_config(dir, "a.yaml", small_config(a, plans)),
                                   "--set evaluate.part=2 --set evaluate.parts=2");
  EXPECT_EQ(part_bad.exit_code, 2) << describe(part_bad);
  EXPECT_EQ(split_lines(part_bad.err).size(), 1u) << part_bad.err;
  EXPECT_NE(part_bad.err.find("evaluate.part"), std::string::npos) << part_bad.err;
  EXPECT_NE(part_bad.err.find("must be below evaluate.parts (2), found 2"), std::string::npos) << part_bad.err;
  const auto ra = run_config(write_config(dir, "a.yaml", small_config(a, plans)), "--set evaluate.part=0 --set evaluate.parts=2");
  ASSERT_EQ(ra.exit_code, 0) << describe(ra);
  const auto rb = run_config(write_config(dir, "b.yaml", small_config(b, plans)), "--set evaluate.part=1 --set evaluate.parts=2");
  ASSERT_EQ(rb.exit_code, 0) << describe(rb);

  const fs::path out = dir / "merged.h5";
  const fs::path a_copy = dir / "a-copy.h5";
  fs::copy_file(a, a_copy);
  const auto r = merge("--out " + quote(out) + " " + quote(a) + " " + quote(b) + " " + quote(a_copy));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const auto ids_a = plan_ids(a), ids_b = plan_ids(b), ids = plan_ids(out);
  ASSERT_EQ(ids.size(), 4u);
  ASSERT_EQ(ids_a.size(), 2u);
  ASSERT_EQ(ids_b.size(), 2u);
  EXPECT_TRUE(ids_a.count("m10") && ids_a.count("m30") && ids_b.count("m20") && ids_b.count("m40"));
  for (const auto& [name, id] : ids_a) {
    ASSERT_EQ(ids.at(name), id);
    expect_same_summary(a, out, id);
  }
  for (const auto& [name, id] : ids_b) {
    ASSERT_EQ(ids.at(name), id);
    expect_same_summary(b, out, id);
  }
  {
    RunArchive merged(out);
    for (const auto& [id, done] : merged.plan_status()) EXPECT_TRUE(done) << id;
    H5File fa(a, H5Mode::Read), fo(out, H5Mode::Read);
    EXPECT_EQ(fo.attr_string("baseline", "eval_hash"), fa.attr_string("baseline", "eval_hash"));
    EXPECT_EQ(fo.read_double("baseline/summary/perplexity")[0], fa.read_double("baseline/summary/perplexity")[0]);
    // a: runs 1 (baseline) and 2; b: 3 and 4; a-copy: 5 and 6. b's plans were computed by b's run 2, now 4.
    EXPECT_EQ(fo.attr_int("/", "runs"), 6);
    EXPECT_EQ(fo.attr_int("plans/" + ids.at("m20"), "run_index"), 4);
    EXPECT_EQ(fo.attr_int("plans/" + ids.at("m10"), "run_index"), 2);
    EXPECT_EQ(fo.attr_string("runs/0003", "merged_from"), b.string());
  }
  const auto py = run_command("/usr/bin/python3 " + kSource + "/analysis/read_archive.py " + out.string() + " --check");
  EXPECT_EQ(py.exit_code, 0) << py.out << py.err;

  // --out exists.
  auto bad = merge("--out " + quote(out) + " " + quote(a));
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_NE(last_line(bad.err).find(out.string() + ": exists"), std::string::npos) << bad.err;

  // Another baseline (other evaluation data: ctx 16): refused, naming the file and the attribute.
  const fs::path other = dir / "other.h5";
  ASSERT_EQ(run_config(write_config(dir, "other.yaml", small_config(other, plan("m10", 0.1), 16)), "--set stages=[baseline]")
                .exit_code,
            0);
  bad = merge("--out " + quote(dir / "x.h5") + " " + quote(a) + " " + quote(other));
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_EQ(split_lines(bad.err).size(), 1u) << bad.err;
  EXPECT_NE(bad.err.find(other.string() + ": data@eval_hash differs from " + a.string() + ": expected "), std::string::npos)
      << bad.err;
  EXPECT_FALSE(fs::exists(dir / "x.h5"));

  // Another model (its checksum, as an archive of tiny-llama2-mha would carry): refused before anything is written.
  const fs::path other_model = dir / "other-model.h5";
  fs::copy_file(b, other_model);
  {
    H5File f(other_model, H5Mode::ReadWrite);
    f.set_attr("/", "model_checksum", "sha256:0000");
    f.close();
  }
  bad = merge("--out " + quote(dir / "z.h5") + " " + quote(a) + " " + quote(other_model));
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_NE(last_line(bad.err).find(other_model.string() + ": /@model_checksum differs from " + a.string() +
                                    ": expected sha256:"),
            std::string::npos)
      << bad.err;
  EXPECT_NE(last_line(bad.err).find(", found sha256:0000"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "z.h5"));

  // The same plan with other metrics: refused.
  {
    H5File f(a_copy, H5Mode::ReadWrite);
    f.remove("plans/" + ids.at("m30") + "/summary/perplexity");
    f.write_scalar("plans/" + ids.at("m30") + "/summary/perplexity", 1.5);
    f.close();
  }
  bad = merge("--out " + quote(dir / "y.h5") + " " + quote(a) + " " + quote(a_copy));
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_NE(last_line(bad.err).find(a_copy.string() + ": plan " + ids.at("m30") + " differs from the same plan in " +
                                    a.string() + ": plans/" + ids.at("m30") + "/summary/perplexity: expected "),
            std::string::npos)
      << bad.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test

// The demo under mpirun (label mpi): tensor parallelism and replicas do not change its results. (Logits,
// generation and error handling under mpirun are covered by tests/parallel.)
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "tests/cli/cli_util.hpp"

namespace divprune::test {
namespace {

CommandResult run_mpi(int ranks, const std::string& args) {
  return run_command(fmt::format("timeout 600 {} --oversubscribe --allow-run-as-root -np {} {} {}", DIVPRUNE_MPIEXEC_PATH, ranks,
                                 divprune_binary(), args));
}

std::string greedy_line(const std::string& out) {
  const auto lines = split_lines(out);
  for (size_t i = 0; i + 1 < lines.size(); ++i)
    if (lines[i].rfind("== greedy generation", 0) == 0) return lines[i + 1];
  return {};
}

TEST(CliMpi, DemoIsTheSameForEveryTpAndReplicaCount) {
  TempDir tmp;
  const CommandResult solo = run_cli("demo -q --out-dir " + quote(tmp / "solo"));
  ASSERT_EQ(solo.exit_code, 0) << describe(solo);
  const PplLine base = parse_ppl_line(last_line(solo.out));
  ASSERT_TRUE(base.ok) << solo.out;
  for (const auto& [ranks, tp] : std::vector<std::pair<int, int>>{{2, 2}, {2, 1}, {4, 2}}) {
    const std::string dir = (tmp / fmt::format("np{}-tp{}", ranks, tp)).string();
    const CommandResult r = run_mpi(ranks, fmt::format("demo -q --tp {} --out-dir {}", tp, quote(dir)));
    ASSERT_EQ(r.exit_code, 0) << "np " << ranks << " tp " << tp << "\n" << describe(r);
    const PplLine ppl = parse_ppl_line(last_line(r.out));
    ASSERT_TRUE(ppl.ok) << r.out;
    EXPECT_EQ(ppl.tokens, 1024);
    EXPECT_NEAR(ppl.ppl, base.ppl, 1e-3 * base.ppl) << "np " << ranks << " tp " << tp;
    EXPECT_EQ(greedy_line(r.out), greedy_line(solo.out)) << "np " << ranks << " tp " << tp;
  }
}

}  // namespace
}  // namespace divprune::test

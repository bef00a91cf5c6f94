// World broadcasts from the coordinator (parallel/broadcast.hpp) under 2 ranks: values, enums, vectors of
// any length (bit-identical doubles, empty, longer or shorter than the receiver's), strings and byte payloads.
#include <gtest/gtest.h>
#include <mpi.h>

#include <bit>
#include <cmath>
#include <limits>

#include "metrics/base_logprobs.hpp"
#include "parallel/broadcast.hpp"

namespace divprune {
namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

TEST(Broadcast, ValuesAndEnumsFromRankZero) {
  const bool root = world_rank() == 0;
  int64_t run_index = root ? 41 : -7;
  int32_t flag = root ? 1 : 0;
  LogprobMode mode = root ? LogprobMode::TopK : LogprobMode::None;
  broadcast_value(run_index);
  broadcast_value(flag);
  broadcast_value(mode);
  EXPECT_EQ(run_index, 41);
  EXPECT_EQ(flag, 1);
  EXPECT_EQ(mode, LogprobMode::TopK);
}

TEST(Broadcast, VectorsArriveBitIdenticalAtTheRootsLength) {
  const bool root = world_rank() == 0;
  const std::vector<double> sent = {0.1, -0.0, std::numeric_limits<double>::denorm_min(), 1e308,
                                    std::numeric_limits<double>::quiet_NaN(), -3.25};
  std::vector<double> values = root ? sent : std::vector<double>(17, 9.0);  // receivers: wrong length, junk
  broadcast_vector(values);
  ASSERT_EQ(values.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i)
    EXPECT_EQ(std::bit_cast<uint64_t>(values[i]), std::bit_cast<uint64_t>(sent[i])) << "element " << i;

  std::vector<uint16_t> empty = root ? std::vector<uint16_t>{} : std::vector<uint16_t>{1, 2, 3};
  broadcast_vector(empty);
  EXPECT_TRUE(empty.empty());

  std::vector<int32_t> big;
  if (root)
    for (int32_t i = 0; i < 300000; ++i) big.push_back(i * 7 - 5);
  broadcast_vector(big);
  ASSERT_EQ(big.size(), 300000u);
  EXPECT_EQ(big[0], -5);
  EXPECT_EQ(big[299999], 299999 * 7 - 5);
}

TEST(Broadcast, StringsAndBytePayloads) {
  const bool root = world_rank() == 0;
  std::string text = root ? std::string("plans:\n  - magnitude\0tail", 25) : std::string("other rank");
  broadcast_string(text);
  EXPECT_EQ(text, std::string("plans:\n  - magnitude\0tail", 25));

  Bytes payload;
  if (root) {
    ByteWriter w;
    w.put<int64_t>(12);
    w.put_string("chunk");
    payload = w.take();
  }
  broadcast_bytes(payload);
  ByteReader r(payload);
  EXPECT_EQ(r.get<int64_t>(), 12);
  EXPECT_EQ(r.get_string(), "chunk");
  EXPECT_TRUE(r.done());
}

}  // namespace
}  // namespace divprune

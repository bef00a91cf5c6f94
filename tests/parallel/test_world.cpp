// Data movement between the coordinator and the world (parallel/world.hpp) under 2 ranks: broadcasts of
// values, enums, vectors of any length (bit-identical doubles, empty, longer or shorter than the receiver's),
// strings and byte payloads; gathers on the coordinator; point-to-point moves to the coordinator.
#include <gtest/gtest.h>
#include <mpi.h>

#include <bit>
#include <cmath>
#include <limits>

#include "metrics/base_logprobs.hpp"
#include "parallel/world.hpp"

namespace divprune {
namespace {

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

TEST(World, GatherAndMoveToTheCoordinator) {
  const int rank = world_rank();
  ASSERT_EQ(world_size(), 2);
  const std::vector<int64_t> shares = gather_on_coordinator(int64_t{100 + rank});
  if (rank == 0) EXPECT_EQ(shares, (std::vector<int64_t>{100, 101}));
  else EXPECT_TRUE(shares.empty());

  // Rows computed on rank 1 arrive on rank 0 only; rank 0's own rows are a copy; several moves keep order.
  const std::vector<float> row1 = {1.5f, -2.0f, 3.25f};
  const std::vector<float> row0 = {7.0f};
  const std::vector<float> first = move_to_coordinator(rank == 1 ? row1 : std::vector<float>{}, 1);
  const std::vector<float> second = move_to_coordinator(rank == 1 ? std::vector<float>{9.0f} : std::vector<float>{}, 1);
  const std::vector<float> own = move_to_coordinator(rank == 0 ? row0 : std::vector<float>{}, 0);
  if (rank == 0) {
    EXPECT_EQ(first, row1);
    EXPECT_EQ(second, std::vector<float>{9.0f});
    EXPECT_EQ(own, row0);
  } else {
    EXPECT_TRUE(first.empty());
    EXPECT_TRUE(second.empty());
    EXPECT_TRUE(own.empty());
  }
}

}  // namespace
}  // namespace divprune

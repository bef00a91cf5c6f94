// chunk_stream: protocol step 3, consecutive chunks of ctx tokens, the last one possibly shorter.
#include <gtest/gtest.h>

#include <numeric>

#include "core/errors.hpp"
#include "metrics/corpus.hpp"

namespace divprune {
namespace {

std::vector<int32_t> iota_ids(size_t n) {
  std::vector<int32_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int32_t> concat(const std::vector<std::vector<int32_t>>& chunks) {
  std::vector<int32_t> out;
  for (const auto& c : chunks) out.insert(out.end(), c.begin(), c.end());
  return out;
}

TEST(ChunkStream, EmptyStreamHasNoChunks) { EXPECT_TRUE(chunk_stream({}, 256).empty()); }

TEST(ChunkStream, ExactMultiple) {
  const auto stream = iota_ids(512);
  const auto chunks = chunk_stream(stream, 256);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].size(), 256u);
  EXPECT_EQ(chunks[1].size(), 256u);
  EXPECT_EQ(chunks[1].front(), 256);
  EXPECT_EQ(concat(chunks), stream);
}

TEST(ChunkStream, ShorterLastChunk) {
  const auto stream = iota_ids(513);
  const auto chunks = chunk_stream(stream, 256);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2], std::vector<int32_t>{512});
  EXPECT_EQ(concat(chunks), stream);
}

TEST(ChunkStream, ContextLongerThanStream) {
  const auto stream = iota_ids(7);
  const auto chunks = chunk_stream(stream, 256);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0], stream);
}

TEST(ChunkStream, ContextOfOne) {
  const auto stream = iota_ids(5);
  const auto chunks = chunk_stream(stream, 1);
  ASSERT_EQ(chunks.size(), 5u);
  for (size_t i = 0; i < chunks.size(); ++i) EXPECT_EQ(chunks[i], std::vector<int32_t>{static_cast<int32_t>(i)});
}

TEST(ChunkStream, ChunkCountsForManyLengths) {
  for (size_t n = 1; n < 70; ++n) {
    for (int64_t ctx : {1, 2, 3, 16, 64, 69, 70}) {
      const auto chunks = chunk_stream(iota_ids(n), ctx);
      EXPECT_EQ(chunks.size(), (n + static_cast<size_t>(ctx) - 1) / static_cast<size_t>(ctx)) << n << " " << ctx;
      for (size_t i = 0; i + 1 < chunks.size(); ++i) EXPECT_EQ(chunks[i].size(), static_cast<size_t>(ctx));
      EXPECT_EQ(concat(chunks), iota_ids(n));
    }
  }
}

TEST(ChunkStream, NonPositiveContextIsAnInputError) {
  EXPECT_THROW(chunk_stream(iota_ids(10), 0), InputError);
  EXPECT_THROW(chunk_stream(iota_ids(10), -256), InputError);
  try {
    chunk_stream(iota_ids(10), 0);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--ctx"), std::string::npos) << e.what();
  }
}

// WikiText-2 test under the protocol: 333,547 tokens -> 1303 chunks, the last one 235 tokens long.
TEST(ChunkStream, WikiText2ChunkArithmetic) {
  const auto chunks = chunk_stream(std::vector<int32_t>(333547, 5), 256);
  ASSERT_EQ(chunks.size(), 1303u);
  EXPECT_EQ(chunks.back().size(), 235u);
}

}  // namespace
}  // namespace divprune

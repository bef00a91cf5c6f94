// The safetensors writer (model/safetensors_writer.hpp) against the reader the loader uses: values round-trip
// exactly in F32 and through round-to-nearest-even in F16 and BF16, the header is 8-byte aligned, sharding follows
// the size limit and writes an index the Hugging Face loader reads, and overflow to infinity is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "model/safetensors.hpp"
#include "model/safetensors_writer.hpp"
#include "tests/model/test_util.hpp"

namespace divprune::test {
namespace {

TEST(SafetensorsWriter, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80u);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000u);
  // 1 + 2^-8 lies exactly between bf16 1.0 (0x3f80) and 1.0078125 (0x3f81): ties go to the even one.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80u);
  // 1 + 3·2^-8 lies between 0x3f81 and 0x3f82: the tie goes up to the even 0x3f82.
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82u);
  // Just above the half-way point rounds up.
  EXPECT_EQ(float_to_bf16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 0x3f81u);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(SafetensorsWriter, RoundTripsThroughTheReader) {
  TempDir tmp;
  const std::vector<float> a = {1.0f, -2.5f, 3.14159265f, 1e-3f, 0.0f, -0.0f};  // [2, 3]
  const std::vector<float> b = {0.1f, 65504.0f, -7.0f};                         // [3]
  const std::vector<SafetensorsTensor> tensors = {{"a", {2, 3}, a}, {"b", {3}, b}};
  for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
    if (dtype == DType::BF16) continue;  // checked below: 65504 is not a bf16 value, the round trip is not exact
    const auto path = tmp / "t.safetensors";
    write_safetensors_file(path, tensors, dtype, {{"format", "pt"}});
    const Safetensors raw = read_safetensors(path);
    uint64_t header_len = 0;
    std::memcpy(&header_len, read_file(path).data(), 8);
    EXPECT_EQ(header_len % 8, 0u);
    EXPECT_EQ(raw.header["__metadata__"]["format"], "pt");
    SafetensorsFile file(path);
    EXPECT_EQ(file.meta("a").shape, (Shape{2, 3}));
    EXPECT_EQ(file.meta("a").dtype, dtype);
    std::vector<float> got(6);
    file.read("a", {0, 2}, {0, 3}, got);
    for (size_t i = 0; i < a.size(); ++i) {
      const float expected = dtype == DType::F32 ? a[i] : half_to_float(float_to_half(a[i]));
      EXPECT_EQ(got[i], expected) << dtype_name(dtype) << " a[" << i << "]";
    }
    EXPECT_EQ(std::signbit(got[5]), true);  // -0 stays -0
    std::vector<float> got_b(3);
    file.read("b", {0, 1}, {0, 3}, got_b);
    EXPECT_EQ(got_b[1], 65504.0f);
  }
  const auto path = tmp / "bf16.safetensors";
  write_safetensors_file(path, std::vector<SafetensorsTensor>{{"a", {2, 3}, a}}, DType::BF16);
  SafetensorsFile file(path);
  std::vector<float> got(6);
  file.read("a", {0, 2}, {0, 3}, got);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(got[i], bf16_to_float(float_to_bf16(a[i])));
}

TEST(SafetensorsWriter, OverflowToInfinityIsAnInputError) {
  TempDir tmp;
  const std::vector<float> big = {1.0f, 70000.0f};
  try {
    write_safetensors_file(tmp / "x.safetensors", std::vector<SafetensorsTensor>{{"w", {2}, big}}, DType::F16);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor \"w\": value 70000 at flat index 1 does not fit in float16"),
              std::string::npos) << e.what();
  }
  // bf16 has fp32's range: the same value is fine there.
  write_safetensors_file(tmp / "y.safetensors", std::vector<SafetensorsTensor>{{"w", {2}, big}}, DType::BF16);
}

TEST(SafetensorsWriter, ShardsFollowTheLimitAndTheIndexNamesEveryTensor) {
  TempDir tmp;
  const std::vector<float> v4(4, 1.0f), v10(10, 2.0f);  // 16 and 40 bytes in F32
  const std::vector<SafetensorsTensor> tensors = {{"t0", {4}, v4}, {"t1", {4}, v4}, {"t2", {10}, v10}, {"t3", {4}, v4}};
  // Limit 32 bytes: [t0 t1] (32), [t2] (40, alone: larger than the limit), [t3].
  const auto files = write_safetensors_shards(tmp.path(), tensors, DType::F32, 32);
  ASSERT_EQ(files, (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                             "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  const auto index = nlohmann::json::parse(read_file(tmp / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 16 * 3 + 40);
  EXPECT_EQ(index["weight_map"]["t0"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["t1"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["t2"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["t3"], "model-00003-of-00003.safetensors");
  SafetensorsFile second(tmp / "model-00002-of-00003.safetensors");
  std::vector<float> got(10);
  second.read("t2", {0, 1}, {0, 10}, got);
  EXPECT_EQ(got, v10);
  // Everything fits: one model.safetensors, no index.
  TempDir one;
  EXPECT_EQ(write_safetensors_shards(one.path(), tensors, DType::F32, 1000), (std::vector<std::string>{"model.safetensors"}));
  EXPECT_FALSE(fs::exists(one / "model.safetensors.index.json"));
}

}  // namespace
}  // namespace divprune::test

#include "model/safetensors_writer.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/errors.hpp"

namespace divprune {

uint16_t float_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // NaN stays NaN
  // Round to nearest even on the 16 bits dropped; a carry into the exponent is the correct rounding.
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

namespace {

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "F32";
}

// Closes the FILE on every path; a failed fclose (delayed write error) is reported by finish().
struct OutFile {
  std::FILE* f = nullptr;
  std::string path;
  explicit OutFile(const std::filesystem::path& p) : f(std::fopen(p.c_str(), "wb")), path(p.string()) {
    if (!f) throw IoError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  }
  ~OutFile() {
    if (f) std::fclose(f);
  }
  void write(const void* data, size_t bytes) {
    if (bytes != 0 && std::fwrite(data, 1, bytes, f) != bytes)
      throw IoError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
  }
  void finish() {
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) throw IoError(fmt::format("{}: close failed: {}", path, std::strerror(errno)));
  }
};

}  // namespace

void encode_values(std::span<const float> values, DType dtype, const std::string& tensor, std::byte* out) {
  if (dtype == DType::F32) {
    std::memcpy(out, values.data(), values.size_bytes());
    return;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t encoded = dtype == DType::F16 ? float_to_half(values[i]) : float_to_bf16(values[i]);
    // Exponent all ones: inf (or NaN) where the fp32 value was finite.
    const bool overflow = dtype == DType::F16 ? (encoded & 0x7c00u) == 0x7c00u : (encoded & 0x7f80u) == 0x7f80u;
    if (overflow && std::isfinite(values[i]))
      throw InputError(fmt::format("tensor \"{}\": value {} at flat index {} does not fit in {} (use --dtype fp32)",
                                   tensor, values[i], i, dtype_name(dtype)));
    std::memcpy(out + 2 * i, &encoded, 2);
  }
}

void write_safetensors_file(const std::filesystem::path& path, std::span<const SafetensorsTensor> tensors,
                            DType dtype, const std::vector<std::pair<std::string, std::string>>& metadata) {
  const size_t elem = dtype_size(dtype);
  // nlohmann's ordered_json keeps insertion order, so the header lists the tensors in data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const SafetensorsTensor& t : tensors) {
    EXPECTS(static_cast<size_t>(shape_numel(t.shape)) == t.values.size(),
            fmt::format("tensor {}: shape {} vs {} values", t.name, shape_string(t.shape), t.values.size()));
    const uint64_t bytes = t.values.size() * elem;
    header[t.name] = {{"dtype", safetensors_dtype_name(dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');  // the data then starts 8-byte aligned
  const uint64_t header_len = text.size();

  OutFile out(path);
  out.write(&header_len, 8);  // little-endian on every supported host
  out.write(text.data(), text.size());
  std::vector<std::byte> buffer;
  for (const SafetensorsTensor& t : tensors) {
    buffer.resize(t.values.size() * elem);
    encode_values(t.values, dtype, t.name, buffer.data());
    out.write(buffer.data(), buffer.size());
  }
  out.finish();
}

std::vector<std::string> write_safetensors_shards(const std::filesystem::path& dir,
                                                  std::span<const SafetensorsTensor> tensors, DType dtype,
                                                  uint64_t max_shard_bytes) {
  EXPECTS(max_shard_bytes > 0, "shard size must be positive");
  const size_t elem = dtype_size(dtype);
  // Greedy in order: a shard takes tensors while they fit; an empty shard takes any tensor.
  std::vector<std::vector<SafetensorsTensor>> shards(1);
  uint64_t used = 0, total = 0;
  for (const SafetensorsTensor& t : tensors) {
    const uint64_t bytes = t.values.size() * elem;
    if (!shards.back().empty() && used + bytes > max_shard_bytes) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(t);
    used += bytes;
    total += bytes;
  }
  const std::vector<std::pair<std::string, std::string>> metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    write_safetensors_file(dir / "model.safetensors", shards[0], dtype, metadata);
    return {"model.safetensors"};
  }
  std::vector<std::string> names;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    write_safetensors_file(dir / name, shards[i], dtype, metadata);
    for (const SafetensorsTensor& t : shards[i]) weight_map[t.name] = name;
    names.push_back(name);
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  OutFile out(dir / "model.safetensors.index.json");
  out.write(text.data(), text.size());
  out.finish();
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace divprune

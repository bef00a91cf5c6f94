#include "model/safetensors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "core/enum_names.hpp"
#include "core/errors.hpp"

namespace divprune {

void convert_to_f32(const std::byte* src, DType dtype, size_t count, float* dst) {
  switch (dtype) {
    case DType::F32:
      std::memcpy(dst, src, count * sizeof(float));
      return;
    case DType::F16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = half_to_float(h);
      }
      return;
    case DType::BF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t b;
        std::memcpy(&b, src + 2 * i, 2);
        dst[i] = bf16_to_float(b);
      }
      return;
  }
}

namespace {

// The dtype names of the safetensors format (the ones divprune reads).
constexpr auto kSafetensorsDTypeNames =
    enum_names<DType>("dtype", {{DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"}});

DType parse_safetensors_dtype(const std::string& name, const std::string& tensor, const std::string& file) {
  if (const auto dtype = kSafetensorsDTypeNames.find(name)) return *dtype;
  throw InputError(fmt::format("{}: tensor \"{}\" has unsupported dtype \"{}\" (known: {})", file, tensor, name,
                               kSafetensorsDTypeNames.known()));
}

// The non-negative integers of a header array ("shape", "data_offsets"). nlohmann's get<> would silently truncate
// 0.5 to 0 and wrap -1; a float or negative entry means the file is not what its writer meant.
std::vector<uint64_t> header_integers(const nlohmann::json& value, const char* key, const std::string& tensor,
                                      const std::string& file) {
  if (!value.is_array())
    throw InputError(fmt::format("{}: tensor \"{}\": {} must be an array of integers, found {}", file, tensor, key, value.dump()));
  std::vector<uint64_t> out;
  for (const auto& item : value) {
    if (!item.is_number_unsigned())
      throw InputError(fmt::format("{}: tensor \"{}\": {} must hold non-negative integers, found {}", file, tensor,
                                   key, item.dump()));
    out.push_back(item.get<uint64_t>());
  }
  return out;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path, "the safetensors file") {
  const std::string where = path.string();
  const size_t file_size = file_.size();
  if (file_size < 8) throw InputError(fmt::format("{}: truncated: {} bytes, too short for the 8-byte header length", where, file_size));
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_.bytes().data(), 8);  // little-endian on every supported host
  if (header_len > file_size - 8)
    throw InputError(fmt::format("{}: header length {} is larger than the file ({} bytes)", where, header_len, file_size));
  const char* header_text = reinterpret_cast<const char*>(file_.bytes().data() + 8);
  // The format pads the header with spaces; a NUL byte is not JSON (nor a valid character inside a JSON string).
  if (const void* nul = std::memchr(header_text, '\0', header_len))
    throw InputError(fmt::format("{}: safetensors header holds a NUL byte at offset {} (padding must be spaces)", where,
                                 8 + (static_cast<const char*>(nul) - header_text)));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text, header_text + header_len);
  } catch (const nlohmann::json::exception& e) {  // also out_of_range: a number like 1e400
    throw InputError(fmt::format("{}: malformed safetensors header: {}", where, e.what()));
  }
  if (!header.is_object()) throw InputError(fmt::format("{}: safetensors header is not a JSON object", where));
  const size_t data_start = 8 + header_len;
  const size_t data_size = file_size - data_start;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets"))
      throw InputError(fmt::format("{}: tensor \"{}\" lacks dtype/shape/data_offsets", where, name));
    Entry entry;
    entry.meta.file = where;
    try {
      entry.meta.dtype = parse_safetensors_dtype(value["dtype"].get<std::string>(), name, where);
      const std::vector<uint64_t> offsets = header_integers(value["data_offsets"], "data_offsets", name, where);
      if (offsets.size() != 2 || offsets[0] > offsets[1])
        throw InputError(fmt::format("{}: tensor \"{}\" has invalid data_offsets", where, name));
      entry.begin = data_start + offsets[0];
      entry.end = data_start + offsets[1];
      if (offsets[1] > data_size)
        throw InputError(fmt::format("{}: truncated: tensor \"{}\" needs data bytes [{}, {}) but the file holds {}",
                                     where, name, offsets[0], offsets[1], data_size));
    } catch (const nlohmann::json::exception& e) {
      throw InputError(fmt::format("{}: tensor \"{}\": malformed entry: {}", where, name, e.what()));
    }
    // The byte count of the shape, with overflow checked: a shape like [2^40, 2^40] must not wrap around to a
    // small number that matches the data (shape_numel does not check).
    const std::vector<uint64_t> dims = header_integers(value["shape"], "shape", name, where);
    uint64_t expected = dtype_size(entry.meta.dtype);
    for (uint64_t d : dims) {
      if (d > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(expected, d, &expected))
        throw InputError(fmt::format("{}: tensor \"{}\" has shape {}, whose size overflows 64 bits", where, name,
                                     value["shape"].dump()));
      entry.meta.shape.push_back(static_cast<int64_t>(d));
    }
    if (entry.end - entry.begin != expected)
      throw InputError(fmt::format("{}: tensor \"{}\" has {} data bytes, its shape {} and dtype need {}", where, name,
                                   entry.end - entry.begin, shape_string(entry.meta.shape), expected));
    tensors_.emplace(name, std::move(entry));
  }
  // No two tensors may share bytes: overlapping entries alias each other's weights (a corrupt or crafted file).
  std::vector<std::pair<const std::string*, const Entry*>> by_offset;
  for (const auto& [name, entry] : tensors_)
    if (entry.end > entry.begin) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i].second->begin < by_offset[i - 1].second->end)
      throw InputError(fmt::format("{}: tensors \"{}\" and \"{}\" overlap (data bytes [{}, {}) and [{}, {}))", where,
                                   *by_offset[i - 1].first, *by_offset[i].first, by_offset[i - 1].second->begin - data_start,
                                   by_offset[i - 1].second->end - data_start, by_offset[i].second->begin - data_start,
                                   by_offset[i].second->end - data_start));
}

TensorMeta SafetensorsFile::meta(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw InputError(fmt::format("{}: missing tensor \"{}\"", file_.path().string(), name));
  return it->second.meta;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : tensors_) out.push_back(name);
  return out;
}

void SafetensorsFile::read(const std::string& name, Range rows, Range cols, std::span<float> out) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw InputError(fmt::format("{}: missing tensor \"{}\"", file_.path().string(), name));
  const Entry& entry = it->second;
  const Shape& shape = entry.meta.shape;
  EXPECTS(shape.size() == 1 || shape.size() == 2, fmt::format("tensor {} has rank {}", name, shape.size()));
  const int64_t n_rows = shape.size() == 1 ? 1 : shape[0];
  const int64_t n_cols = shape.back();
  EXPECTS(rows.begin >= 0 && rows.end <= n_rows && cols.begin >= 0 && cols.end <= n_cols &&
              static_cast<int64_t>(out.size()) == rows.size() * cols.size(),
          fmt::format("slice of {} {}", name, shape_string(shape)));
  const size_t elem = dtype_size(entry.meta.dtype);
  const std::byte* base = file_.bytes().data() + entry.begin;
  for (int64_t r = rows.begin; r < rows.end; ++r) {
    const std::byte* src = base + (static_cast<size_t>(r) * n_cols + cols.begin) * elem;
    convert_to_f32(src, entry.meta.dtype, static_cast<size_t>(cols.size()),
                   out.data() + (r - rows.begin) * cols.size());
  }
}

}  // namespace divprune

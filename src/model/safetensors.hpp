#pragma once
// Reader of one .safetensors file: 8-byte little-endian header length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets}, then the raw data. Every offset is validated against the file size when the
// file is opened, so a truncated file is reported up front instead of crashing on a read.
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>

#include "model/checkpoint.hpp"
#include "model/mapped_file.hpp"

namespace divprune {

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);  // throws InputError naming the file

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  TensorMeta meta(const std::string& name) const;
  std::vector<std::string> names() const;
  // See Checkpoint::read.
  void read(const std::string& name, Range rows, Range cols, std::span<float> out) const;
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  struct Entry {
    TensorMeta meta;
    size_t begin = 0;  // absolute byte offsets in the file
    size_t end = 0;
  };
  MappedFile file_;
  std::map<std::string, Entry> tensors_;
};

// Converts `count` elements of `dtype` at `src` to fp32.
void convert_to_f32(const std::byte* src, DType dtype, size_t count, float* dst);

}  // namespace divprune

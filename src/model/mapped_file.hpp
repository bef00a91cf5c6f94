#pragma once
// A read-only memory map of a whole file. Checkpoints are mapped, never read whole: a tensor-parallel rank
// touches only the pages of its own slices.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

namespace divprune {

class MappedFile {
 public:
  // `what` names the file in messages ("the safetensors file"). Throws InputError naming the file; a FIFO or other
  // non-regular file is refused before it is opened (core/input_file.hpp).
  MappedFile(const std::filesystem::path& path, std::string_view what);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace divprune

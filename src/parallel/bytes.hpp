#pragma once
// Byte payloads: what the work queue carries from replicas to the coordinator and what the world broadcasts
// (parallel/world.hpp) send. ByteWriter appends trivially copyable values and vectors; ByteReader takes
// them out in the same order and throws when the payload is too short.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/errors.hpp"

namespace divprune {

using Bytes = std::vector<char>;

// Appends values to a byte payload; ByteReader takes them out in the same order.
class ByteWriter {
 public:
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const char* p = reinterpret_cast<const char*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  template <typename T>
  void put_vector(std::span<const T> values) {
    static_assert(std::is_trivially_copyable_v<T>);
    put<int64_t>(static_cast<int64_t>(values.size()));
    const char* p = reinterpret_cast<const char*>(values.data());
    bytes_.insert(bytes_.end(), p, p + values.size_bytes());
  }
  template <typename T>
  void put_vector(const std::vector<T>& values) {
    put_vector(std::span<const T>(values));
  }
  void put_string(const std::string& s) { put_vector(std::span<const char>(s.data(), s.size())); }
  Bytes take() { return std::move(bytes_); }

 private:
  Bytes bytes_;
};

class ByteReader {
 public:
  explicit ByteReader(const Bytes& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    EXPECTS(at_ + sizeof(T) <= bytes_.size(), "payload too short");
    T value;
    std::memcpy(&value, bytes_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return value;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const auto n = static_cast<size_t>(get<int64_t>());
    EXPECTS(at_ + n * sizeof(T) <= bytes_.size(), "payload too short");
    std::vector<T> out(n);
    if (n > 0) std::memcpy(out.data(), bytes_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return out;
  }
  std::string get_string() {
    const auto chars = get_vector<char>();
    return std::string(chars.begin(), chars.end());
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const Bytes& bytes_;
  size_t at_ = 0;
};

}  // namespace divprune

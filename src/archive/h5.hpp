#pragma once
// A thin RAII layer over the HDF5 C API: open/create files and groups, read and write whole numeric datasets
// and strings. HDF5's own error printing is switched off; failures become InputError naming file and dataset.
#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace divprune {

class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = -1;
    }
    return *this;
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t id() const { return id_; }
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

enum class H5Mode { Read, ReadWrite, Truncate };

class H5File {
 public:
  H5File(const std::filesystem::path& path, H5Mode mode);
  hid_t id() const { return file_.id(); }
  const std::string& path() const { return path_; }
  bool exists(const std::string& name) const;  // a dataset or group path, e.g. "tokenizer/text_0"

  Shape dims(const std::string& dataset) const;
  std::vector<int32_t> read_int32(const std::string& dataset, Shape* dims = nullptr) const;
  std::vector<float> read_float(const std::string& dataset, Shape* dims = nullptr) const;
  std::vector<double> read_double(const std::string& dataset, Shape* dims = nullptr) const;
  std::string read_string(const std::string& dataset) const;

  // Creates intermediate groups. `chunk_rows` > 0 makes the dataset chunked along dim 0 and gzip-compressed.
  void write_float(const std::string& dataset, const Shape& dims, const float* data, int64_t chunk_rows = 0);
  void write_int32(const std::string& dataset, const Shape& dims, const int32_t* data, int64_t chunk_rows = 0);
  void write_double(const std::string& dataset, const Shape& dims, const double* data);
  void flush();

 private:
  void read_raw(const std::string& dataset, hid_t mem_type, void* out, Shape* dims, size_t elem) const;
  void write_raw(const std::string& dataset, const Shape& dims, hid_t mem_type, hid_t file_type, const void* data,
                 int64_t chunk_rows);
  H5Handle file_;
  std::string path_;
};

}  // namespace divprune

#pragma once
// A thin RAII layer over the HDF5 C API: open/create files and groups, read and write whole numeric datasets
// and strings. HDF5's own error printing is switched off. Every HDF5 return value is checked: failures to open a
// file or to read what should be there become InputError (the file is not what the user said it was); failures
// to create, write, delete, flush or close become IoError (core/errors.hpp), both naming file and object.
// Close a file written to with close(): the destructor closes too, but can only log a failure.
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
  // Closes the handle and returns the close function's result (0 when there is nothing to close); the caller
  // checks it. Used where a failed close means lost data (files, datasets written to).
  herr_t close() {
    const herr_t rc = id_ >= 0 && close_ != nullptr ? close_(id_) : 0;
    id_ = -1;
    return rc;
  }
  // Closes without throwing (destructors, moves): a failure is logged.
  void reset() noexcept;

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

enum class H5Mode { Read, ReadWrite, Truncate };

// Element types of datasets written through write_rows/create_dataset. F16 is IEEE half (h5py reads it as
// numpy float16); in memory it is the raw uint16 bit pattern (core/dtype.hpp: float_to_half / half_to_float).
enum class H5Type { F16, F32, F64, I32, I64, U8 };
size_t h5_type_size(H5Type type);

class H5File {
 public:
  // ReadWrite creates a missing file. `reserve` > 0 (ReadWrite only): first extend the file by that many bytes of
  // allocated blocks, so that a transaction of up to about that size cannot run out of disk half-way (IoError
  // "no space left on device: PATH" before anything is written); HDF5 truncates the unused part on close.
  H5File(const std::filesystem::path& path, H5Mode mode, int64_t reserve = 0);
  // Closes the file (HDF5 writes its metadata cache here): IoError on failure. The object is unusable after.
  void close();
  // Makes every relative object path resolve under `group` (a run archive's sub-archive, e.g. "heldout"; "/"
  // still names the file's root). Creates the group in a writable file; InputError when a read-only file lacks it.
  void set_root(const std::string& group);
  hid_t id() const { return root_.id() >= 0 ? root_.id() : file_.id(); }
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

  // ---- Extensions for the run archive (archive/archive.hpp) ----
  std::vector<int64_t> read_int64(const std::string& dataset, Shape* dims = nullptr) const;
  std::vector<uint8_t> read_uint8(const std::string& dataset, Shape* dims = nullptr) const;
  std::vector<uint16_t> read_f16_bits(const std::string& dataset, Shape* dims = nullptr) const;
  std::vector<std::string> read_strings(const std::string& dataset) const;  // 1-D variable-length strings
  void write_int64(const std::string& dataset, const Shape& dims, const int64_t* data, int64_t chunk_rows = 0);
  void write_uint8(const std::string& dataset, const Shape& dims, const uint8_t* data, int64_t chunk_rows = 0);
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);
  void write_scalar(const std::string& dataset, double value);
  void write_scalar_int(const std::string& dataset, int64_t value);

  // A dataset of `dims` filled later by write_rows. chunk_rows > 0: chunked along dim 0 (and gzip when
  // `compress`); chunk_rows = 0: contiguous. Replaces an existing dataset of that name.
  void create_dataset(const std::string& dataset, H5Type type, const Shape& dims, int64_t chunk_rows, bool compress);
  // Rows [row0, row0 + rows) along dim 0; `data` holds rows × (product of the other dims) elements of `type`.
  void write_rows(const std::string& dataset, H5Type type, int64_t row0, int64_t rows, const void* data);
  void read_rows(const std::string& dataset, H5Type type, int64_t row0, int64_t rows, void* out) const;

  // Groups and links.
  void create_group(const std::string& group);     // with intermediate groups; no-op when it exists
  void remove(const std::string& name);            // unlinks a dataset or group (no-op when missing)
  std::vector<std::string> children(const std::string& group) const;  // member names, sorted by name
  bool is_group(const std::string& name) const;

  // Attributes of an object ("/" is the root group). Setting replaces an existing attribute.
  void set_attr(const std::string& object, const std::string& name, const std::string& value);
  void set_attr(const std::string& object, const std::string& name, const char* value) {
    set_attr(object, name, std::string(value));
  }
  void set_attr(const std::string& object, const std::string& name, int64_t value);
  void set_attr(const std::string& object, const std::string& name, int value) {
    set_attr(object, name, static_cast<int64_t>(value));
  }
  void set_attr(const std::string& object, const std::string& name, double value);
  void set_attr(const std::string& object, const std::string& name, const std::vector<double>& values);
  bool has_attr(const std::string& object, const std::string& name) const;
  std::string attr_string(const std::string& object, const std::string& name) const;
  int64_t attr_int(const std::string& object, const std::string& name) const;
  double attr_double(const std::string& object, const std::string& name) const;
  std::vector<double> attr_doubles(const std::string& object, const std::string& name) const;
  std::vector<std::string> attr_names(const std::string& object) const;

 private:
  void read_raw(const std::string& dataset, hid_t mem_type, void* out, Shape* dims, size_t elem) const;
  void write_raw(const std::string& dataset, const Shape& dims, hid_t mem_type, hid_t file_type, const void* data,
                 int64_t chunk_rows);
  H5Handle file_;
  H5Handle root_;  // the group of set_root (closed before the file: declared after it)
  std::string path_;
};

// Copies object `name` of `src` (a group with everything under it, or a dataset, attributes included) to `dst_name`
// of `dst`, creating intermediate groups (H5Ocopy). InputError when `src` lacks it; IoError when the copy fails.
void h5_copy_object(const H5File& src, const std::string& name, H5File& dst, const std::string& dst_name);
// Copies every attribute of object `name` of `src` onto object `dst_name` of `dst` (same types), replacing any of
// the same name.
void h5_copy_attributes(const H5File& src, const std::string& name, H5File& dst, const std::string& dst_name);

}  // namespace divprune

#include "archive/h5.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>

#include "core/errors.hpp"

namespace divprune {

namespace {
// The message of a write that failed for lack of room (errno of the failed write or allocation), "" otherwise.
std::string out_of_space(int err, const std::string& file) {
  if (err == ENOSPC || err == EDQUOT) return fmt::format("no space left on device: {}", file);
  if (err == EFBIG) return fmt::format("file size limit exceeded: {}", file);
  return "";
}

// Write path: a negative HDF5 result is an I/O failure of the output file. HDF5's sec2 driver fails right after
// the write(2) that failed, so errno still says why: a full disk (or quota, or `ulimit -f`) gets its own words.
void io_check(herr_t rc, const std::string& file, const std::string& what) {
  if (rc >= 0) return;
  const std::string space = out_of_space(errno, file);
  if (!space.empty()) throw IoError(fmt::format("{} (HDF5 failed to {})", space, what));
  throw IoError(fmt::format("{}: HDF5 failed to {}", file, what));
}
hid_t io_check_id(hid_t id, const std::string& file, const std::string& what) {
  io_check(id < 0 ? -1 : 0, file, what);
  return id;
}
// Read path: a negative result means the file does not hold what the caller expected.
void read_check(herr_t rc, const std::string& file, const std::string& what) {
  if (rc < 0) throw InputError(fmt::format("{}: cannot {}", file, what));
}
// Library setup (types): a failure is a broken HDF5 installation, not the file's fault.
hid_t lib_check_id(hid_t id, const char* what) {
  if (id < 0) throw InternalError(fmt::format("HDF5: {} failed", what));
  return id;
}
void lib_check(herr_t rc, const char* what) { lib_check_id(rc < 0 ? -1 : 0, what); }

void silence_hdf5() {
  static bool done = false;
  if (!done) {
    // No HDF5 clean-up at exit. When H5Fclose fails (its metadata flush hit a full disk), HDF5 1.10 frees the file
    // but keeps its id; the exit-time H5close then closes that id again and segfaults (exit 139 instead of the
    // IoError's 3). Every file is closed by its H5File before exit, so the clean-up has nothing left to do.
    // Must come before the first call that initialises the library (it fails harmlessly after).
    H5dont_atexit();
    lib_check(H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr), "H5Eset_auto2");
    done = true;
  }
}

void ensure_parent_groups(hid_t file, const std::string& file_name, const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string group = path.substr(0, pos);
    const htri_t there = H5Lexists(file, group.c_str(), H5P_DEFAULT);
    io_check(there, file_name, fmt::format("look up group \"{}\"", group));
    if (there == 0) {
      const hid_t g = io_check_id(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), file_name,
                                  fmt::format("create group \"{}\"", group));
      io_check(H5Gclose(g), file_name, fmt::format("close group \"{}\"", group));
    }
  }
}

// Unlinks `name` when it exists (datasets are replaced by unlinking and creating anew).
void unlink_if_exists(const H5File& f, const std::string& name) {
  if (f.exists(name)) io_check(H5Ldelete(f.id(), name.c_str(), H5P_DEFAULT), f.path(), fmt::format("delete \"{}\"", name));
}

// Dataset creation properties: chunks of up to `chunk_rows` rows along dim 0, shuffle + gzip when `compress`.
H5Handle dataset_properties(const std::vector<hsize_t>& d, int64_t chunk_rows, bool compress, const std::string& file,
                            const std::string& dataset) {
  const std::string what = fmt::format("set the storage of dataset \"{}\"", dataset);
  H5Handle props(io_check_id(H5Pcreate(H5P_DATASET_CREATE), file, what), H5Pclose);
  size_t numel = 1;
  for (hsize_t v : d) numel *= v;
  if (chunk_rows > 0 && !d.empty() && numel > 0) {
    std::vector<hsize_t> chunk = d;
    chunk[0] = std::min<hsize_t>(d[0], static_cast<hsize_t>(chunk_rows));
    io_check(H5Pset_chunk(props.id(), static_cast<int>(chunk.size()), chunk.data()), file, what);
    if (compress) {
      io_check(H5Pset_shuffle(props.id()), file, what);
      io_check(H5Pset_deflate(props.id(), 4), file, what);
    }
  }
  return props;
}
// Why H5Fopen/H5Fcreate failed on `path`, for the one error line: HDF5's own error stack is silenced and would
// say "unable to open file" alike for a file another process holds, a file we may not write and a damaged one.
std::string why_not_openable(const std::filesystem::path& path, H5Mode mode) {
  const bool write = mode != H5Mode::Read;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    // Creating failed: the folder (permissions, read-only file system).
    const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (::access(dir.c_str(), W_OK) != 0)
      return fmt::format("cannot create it in {} ({})", dir.string(), std::strerror(errno));
    return "HDF5 cannot create it";
  }
  if (!std::filesystem::is_regular_file(path, ec)) return "not a regular file";
  if (::access(path.c_str(), R_OK) != 0) return fmt::format("permission denied: cannot read it ({})", std::strerror(errno));
  if (write && ::access(path.c_str(), W_OK) != 0)
    return fmt::format("read-only: no permission to write it ({})", std::strerror(errno));
  const int fd = ::open(path.c_str(), write ? O_RDWR : O_RDONLY);
  if (fd < 0) return fmt::format("cannot open it for {} ({})", write ? "writing" : "reading", std::strerror(errno));
  // HDF5 (1.10+) takes flock(2) on the file: exclusive for writing, shared for reading. A lock we cannot take
  // means another process has it open.
  std::string reason;
  const int locked = ::flock(fd, (write ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0 ? 0 : errno;
  if (locked == EWOULDBLOCK) {
    reason = fmt::format("locked by another process (HDF5 file locking): a program has it open{}; wait for it or stop it",
                         write ? "" : " for writing");
  } else if (locked != 0) {
    // Some parallel file systems refuse flock; HDF5 then fails every open.
    reason = fmt::format("this file system does not support HDF5's file locking (flock: {}); set "
                         "HDF5_USE_FILE_LOCKING=FALSE if only one program uses the file", std::strerror(locked));
  } else {
    // The format signature "\x89HDF\r\n\x1a\n" sits at byte 0, 512, 1024, 2048, ... (a user block before it).
    static constexpr char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
    const auto size = static_cast<off_t>(std::filesystem::file_size(path, ec));
    bool signature = false;
    for (off_t at = 0; !signature && at + 8 <= size; at = at == 0 ? 512 : at * 2) {
      char head[8] = {};
      signature = ::pread(fd, head, 8, at) == 8 && std::memcmp(head, kSignature, 8) == 0;
    }
    if (size == 0) reason = "the file is empty (not an HDF5 file)";
    else if (!signature) reason = "not an HDF5 file (no HDF5 signature)";
    else reason = "truncated or corrupt: the HDF5 signature is there but HDF5 cannot read the file";
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return reason;
}


// Extends `path` by `bytes` of allocated blocks past its end (posix_fallocate) before HDF5 opens it: HDF5 then
// writes the transaction's data and metadata into blocks the file system has already granted, and truncates the
// file back to its end of allocated space on close. A disk too full for the transaction fails here, before HDF5
// changed a byte, instead of in the middle of a metadata flush that leaves the file unreadable.
void reserve_space(const std::string& path, int64_t bytes) {
  // Only regular files that can be opened for writing: anything else keeps the error H5Fopen gives it.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  int err = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    err = ::posix_fallocate(fd, st.st_size, static_cast<off_t>(bytes));  // returns the error number
    // A file system that cannot preallocate just does without the reservation.
    if (err == EOPNOTSUPP || err == EINVAL) err = 0;
    // A failed reservation may have granted part: give it back (best effort; HDF5 truncates to its end of
    // allocation on its next close anyway).
    if (err != 0 && ::ftruncate(fd, st.st_size) != 0) spdlog::debug("{}: could not truncate after a failed reservation", path);
  }
  ::close(fd);
  if (err == 0) return;
  const std::string space = out_of_space(err, path);
  throw IoError(space.empty() ? fmt::format("{}: cannot reserve {} bytes to write: {}", path, bytes, std::strerror(err))
                              : fmt::format("{} (reserving {} bytes for the next write)", space, bytes));
}
}  // namespace

void H5Handle::reset() noexcept {
  const hid_t id = id_;
  if (close() >= 0) return;
  // While an exception unwinds (the write already failed and is being reported), the failed close is its
  // consequence: keep the error to that one line.
  if (std::uncaught_exceptions() > 0) spdlog::debug("HDF5: closing handle {} failed while unwinding", id);
  else spdlog::error("HDF5: closing handle {} failed (a file written through it may be incomplete)", id);
}

H5File::H5File(const std::filesystem::path& path, H5Mode mode, int64_t reserve) : path_(path.string()) {
  silence_hdf5();
  hid_t id = -1;
  switch (mode) {
    case H5Mode::Read:
      if (!std::filesystem::exists(path)) throw InputError(fmt::format("{}: no such file", path_));
      id = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      break;
    case H5Mode::ReadWrite: {
      bool created = false;
      if (!std::filesystem::exists(path)) {
        // Create the empty file first (a superblock, a root group) so that the reservation below also covers
        // the first transaction. A failed creation leaves nothing behind.
        id = H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
        if (id < 0)
          throw InputError(fmt::format("{}: cannot open as an HDF5 file: {}", path_, why_not_openable(path, mode)));
        const int err = H5Fclose(id) < 0 ? (errno != 0 ? errno : EIO) : 0;
        if (err != 0) {
          std::error_code ec;
          std::filesystem::remove(path, ec);
          const std::string space = out_of_space(err, path_);
          throw IoError(space.empty() ? fmt::format("{}: HDF5 failed to create the file", path_) : space);
        }
        created = true;
      }
      try {
        // Only an HDF5 file gets the reservation: a path that names anything else keeps H5Fopen's error below
        // and is not extended.
        if (reserve > 0 && H5Fis_hdf5(path_.c_str()) > 0) reserve_space(path_, reserve);
      } catch (const IoError&) {
        if (created) std::filesystem::remove(path);  // nothing was written to the new file yet: leave no husk
        throw;
      }
      id = H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
      break;
    }
    case H5Mode::Truncate:
      id = H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      break;
  }
  if (id < 0) throw InputError(fmt::format("{}: cannot open as an HDF5 file: {}", path_, why_not_openable(path, mode)));
  file_ = H5Handle(id, H5Fclose);
}

void H5File::close() {
  // The file only closes once every object in it is closed.
  io_check(root_.close(), path_, "close the root group");
  io_check(file_.close(), path_, "close the file");
}

void H5File::set_root(const std::string& group) {
  if (!exists(group)) {
    unsigned intent = 0;
    read_check(H5Fget_intent(file_.id(), &intent), path_, "inspect the file's access mode");
    if ((intent & H5F_ACC_RDWR) == 0) throw InputError(fmt::format("{}: no group \"{}\"", path_, group));
    create_group(group);
  }
  const hid_t g = H5Gopen2(file_.id(), group.c_str(), H5P_DEFAULT);
  if (g < 0) throw InputError(fmt::format("{}: \"{}\" is not a group", path_, group));
  root_ = H5Handle(g, H5Gclose);
}

bool H5File::exists(const std::string& name) const {
  // Check every prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    const std::string prefix = name.substr(0, pos);
    // Negative: the prefix names no link (e.g. a path through a dataset); that is "not there" too.
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

Shape H5File::dims(const std::string& dataset) const {
  if (!exists(dataset)) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: \"{}\" is not a dataset", path_, dataset));
  const std::string what = fmt::format("read the shape of \"{}\"", dataset);
  H5Handle space(H5Dget_space(ds.id()), H5Sclose);
  read_check(space.id() < 0 ? -1 : 0, path_, what);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  read_check(rank, path_, what);
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  read_check(H5Sget_simple_extent_dims(space.id(), d.data(), nullptr), path_, what);
  return Shape(d.begin(), d.end());
}

void H5File::read_raw(const std::string& dataset, hid_t mem_type, void* out, Shape* dims_out, size_t) const {
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  if (H5Dread(ds.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
    throw InputError(fmt::format("{}: cannot read dataset \"{}\" as a number array", path_, dataset));
  if (dims_out != nullptr) *dims_out = dims(dataset);
}

std::vector<int32_t> H5File::read_int32(const std::string& dataset, Shape* d) const {
  std::vector<int32_t> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, H5T_NATIVE_INT32, out.data(), d, sizeof(int32_t));
  return out;
}

std::vector<float> H5File::read_float(const std::string& dataset, Shape* d) const {
  std::vector<float> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, H5T_NATIVE_FLOAT, out.data(), d, sizeof(float));
  return out;
}

std::vector<double> H5File::read_double(const std::string& dataset, Shape* d) const {
  std::vector<double> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, H5T_NATIVE_DOUBLE, out.data(), d, sizeof(double));
  return out;
}

std::string H5File::read_string(const std::string& dataset) const {
  if (!exists(dataset)) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  const std::string what = fmt::format("read string \"{}\"", dataset);
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  read_check(ds.id() < 0 ? -1 : 0, path_, what);
  H5Handle type(H5Dget_type(ds.id()), H5Tclose);
  read_check(type.id() < 0 ? -1 : 0, path_, what);
  if (H5Tget_class(type.id()) != H5T_STRING) throw InputError(fmt::format("{}: \"{}\" is not a string", path_, dataset));
  const htri_t variable = H5Tis_variable_str(type.id());
  read_check(variable, path_, what);
  if (variable > 0) {
    const H5T_cset_t cset = H5Tget_cset(type.id());
    read_check(cset < 0 ? -1 : 0, path_, what);
    H5Handle mem(lib_check_id(H5Tcopy(H5T_C_S1), "H5Tcopy"), H5Tclose);
    lib_check(H5Tset_size(mem.id(), H5T_VARIABLE), "H5Tset_size");
    lib_check(H5Tset_cset(mem.id(), cset), "H5Tset_cset");
    char* value = nullptr;
    read_check(H5Dread(ds.id(), mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &value), path_, what);
    std::string out = value != nullptr ? value : "";
    H5Handle space(H5Dget_space(ds.id()), H5Sclose);
    read_check(space.id() < 0 ? -1 : 0, path_, what);
    read_check(H5Dvlen_reclaim(mem.id(), space.id(), H5P_DEFAULT, &value), path_, what);
    return out;
  }
  const size_t size = H5Tget_size(type.id());
  read_check(size == 0 ? -1 : 0, path_, what);
  std::string out(size, '\0');
  if (H5Dread(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw InputError(fmt::format("{}: cannot read string \"{}\"", path_, dataset));
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

void H5File::write_raw(const std::string& dataset, const Shape& dims, hid_t mem_type, hid_t file_type,
                       const void* data, int64_t chunk_rows) {
  ensure_parent_groups(id(), path_, dataset);
  unlink_if_exists(*this, dataset);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  // No dims: a scalar.
  H5Handle space(io_check_id(d.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr),
                             path_, fmt::format("make the dataspace of \"{}\"", dataset)),
                 H5Sclose);
  H5Handle props = dataset_properties(d, chunk_rows, true, path_, dataset);
  H5Handle ds(io_check_id(H5Dcreate2(id(), dataset.c_str(), file_type, space.id(), H5P_DEFAULT, props.id(), H5P_DEFAULT),
                          path_, fmt::format("create dataset \"{}\"", dataset)),
              H5Dclose);
  if (shape_numel(dims) > 0)
    io_check(H5Dwrite(ds.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path_, fmt::format("write dataset \"{}\"", dataset));
  io_check(ds.close(), path_, fmt::format("close dataset \"{}\"", dataset));
}

void H5File::write_float(const std::string& dataset, const Shape& dims, const float* data, int64_t chunk_rows) {
  write_raw(dataset, dims, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, chunk_rows);
}
void H5File::write_int32(const std::string& dataset, const Shape& dims, const int32_t* data, int64_t chunk_rows) {
  write_raw(dataset, dims, H5T_NATIVE_INT32, H5T_STD_I32LE, data, chunk_rows);
}
void H5File::write_double(const std::string& dataset, const Shape& dims, const double* data) {
  write_raw(dataset, dims, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, data, 0);
}
void H5File::flush() { io_check(H5Fflush(id(), H5F_SCOPE_GLOBAL), path_, "flush the file"); }

}  // namespace divprune

// ---- Extensions for the run archive ----------------------------------------------------------------------------

namespace divprune {

namespace {

// IEEE half as h5py builds it (h5t.pyx): a copy of float32 with 1-5-10 fields and bias 15.
hid_t half_type() {
  static hid_t type = [] {
    hid_t t = lib_check_id(H5Tcopy(H5T_IEEE_F32LE), "H5Tcopy (half type)");
    lib_check(H5Tset_fields(t, 15, 10, 5, 0, 10), "H5Tset_fields (half type)");
    lib_check(H5Tset_size(t, 2), "H5Tset_size (half type)");
    lib_check(H5Tset_ebias(t, 15), "H5Tset_ebias (half type)");
    lib_check(H5Tlock(t), "H5Tlock (half type)");
    return t;
  }();
  return type;
}

hid_t file_type(H5Type t) {
  switch (t) {
    case H5Type::F16: return half_type();
    case H5Type::F32: return H5T_IEEE_F32LE;
    case H5Type::F64: return H5T_IEEE_F64LE;
    case H5Type::I32: return H5T_STD_I32LE;
    case H5Type::I64: return H5T_STD_I64LE;
    case H5Type::U8: return H5T_STD_U8LE;
  }
  return -1;
}

hid_t mem_type(H5Type t) {
  switch (t) {
    case H5Type::F16: return half_type();
    case H5Type::F32: return H5T_NATIVE_FLOAT;
    case H5Type::F64: return H5T_NATIVE_DOUBLE;
    case H5Type::I32: return H5T_NATIVE_INT32;
    case H5Type::I64: return H5T_NATIVE_INT64;
    case H5Type::U8: return H5T_NATIVE_UINT8;
  }
  return -1;
}

H5Handle open_object(hid_t file, const std::string& path, const std::string& file_name) {
  hid_t id = H5Oopen(file, path.c_str(), H5P_DEFAULT);
  if (id < 0) throw InputError(fmt::format("{}: no object \"{}\"", file_name, path));
  return H5Handle(id, H5Oclose);
}

H5Handle string_type() {
  H5Handle t(lib_check_id(H5Tcopy(H5T_C_S1), "H5Tcopy (string type)"), H5Tclose);
  lib_check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size (string type)");
  lib_check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset (string type)");
  return t;
}

}  // namespace

size_t h5_type_size(H5Type type) {
  switch (type) {
    case H5Type::F16: return 2;
    case H5Type::F32: return 4;
    case H5Type::F64: return 8;
    case H5Type::I32: return 4;
    case H5Type::I64: return 8;
    case H5Type::U8: return 1;
  }
  return 0;
}

std::vector<int64_t> H5File::read_int64(const std::string& dataset, Shape* d) const {
  std::vector<int64_t> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, H5T_NATIVE_INT64, out.data(), d, sizeof(int64_t));
  return out;
}

std::vector<uint8_t> H5File::read_uint8(const std::string& dataset, Shape* d) const {
  std::vector<uint8_t> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, H5T_NATIVE_UINT8, out.data(), d, 1);
  return out;
}

std::vector<uint16_t> H5File::read_f16_bits(const std::string& dataset, Shape* d) const {
  std::vector<uint16_t> out(static_cast<size_t>(shape_numel(dims(dataset))));
  read_raw(dataset, half_type(), out.data(), d, 2);
  return out;
}

void H5File::write_int64(const std::string& dataset, const Shape& dims, const int64_t* data, int64_t chunk_rows) {
  write_raw(dataset, dims, H5T_NATIVE_INT64, H5T_STD_I64LE, data, chunk_rows);
}
void H5File::write_uint8(const std::string& dataset, const Shape& dims, const uint8_t* data, int64_t chunk_rows) {
  write_raw(dataset, dims, H5T_NATIVE_UINT8, H5T_STD_U8LE, data, chunk_rows);
}

void H5File::write_scalar(const std::string& dataset, double value) {
  write_raw(dataset, {}, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &value, 0);
}

void H5File::write_scalar_int(const std::string& dataset, int64_t value) {
  write_raw(dataset, {}, H5T_NATIVE_INT64, H5T_STD_I64LE, &value, 0);
}

void H5File::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  H5Handle type = string_type();
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  write_raw(dataset, {static_cast<int64_t>(values.size())}, type.id(), type.id(), pointers.data(), 0);
}

std::vector<std::string> H5File::read_strings(const std::string& dataset) const {
  const Shape d = dims(dataset);
  if (d.size() != 1) throw InputError(fmt::format("{}: \"{}\" is not a 1-D string array", path_, dataset));
  const std::string what = fmt::format("read strings \"{}\"", dataset);
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  read_check(ds.id() < 0 ? -1 : 0, path_, what);
  H5Handle type = string_type();
  std::vector<char*> pointers(static_cast<size_t>(d[0]), nullptr);
  if (d[0] > 0) read_check(H5Dread(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), path_, what);
  std::vector<std::string> out;
  for (char* p : pointers) out.emplace_back(p != nullptr ? p : "");
  if (d[0] > 0) {
    H5Handle space(H5Dget_space(ds.id()), H5Sclose);
    read_check(space.id() < 0 ? -1 : 0, path_, what);
    read_check(H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, pointers.data()), path_, what);
  }
  return out;
}

void H5File::create_dataset(const std::string& dataset, H5Type type, const Shape& dims, int64_t chunk_rows,
                            bool compress) {
  ensure_parent_groups(id(), path_, dataset);
  unlink_if_exists(*this, dataset);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  H5Handle space(io_check_id(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), path_,
                             fmt::format("make the dataspace of \"{}\"", dataset)),
                 H5Sclose);
  H5Handle props = dataset_properties(d, chunk_rows, compress, path_, dataset);
  H5Handle ds(io_check_id(H5Dcreate2(id(), dataset.c_str(), file_type(type), space.id(), H5P_DEFAULT, props.id(), H5P_DEFAULT),
                          path_, fmt::format("create dataset \"{}\"", dataset)),
              H5Dclose);
  io_check(ds.close(), path_, fmt::format("close dataset \"{}\"", dataset));
}

namespace {
// The hyperslab of rows [row0, row0 + rows) of a dataset and the matching memory space.
struct RowSlab {
  H5Handle file_space, mem_space;
};
// Failures of the dataspace calls are the library's (the dataset was opened): InternalError.
RowSlab row_slab(hid_t ds, int64_t row0, int64_t rows, const std::string& where) {
  RowSlab s{H5Handle(lib_check_id(H5Dget_space(ds), "H5Dget_space"), H5Sclose), H5Handle()};
  const int rank = H5Sget_simple_extent_ndims(s.file_space.id());
  lib_check(rank, "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  lib_check(H5Sget_simple_extent_dims(s.file_space.id(), d.data(), nullptr), "H5Sget_simple_extent_dims");
  if (d.empty() || row0 < 0 || rows < 0 || static_cast<hsize_t>(row0 + rows) > d[0])
    throw InputError(fmt::format("{}: rows [{}, {}) outside the dataset", where, row0, row0 + rows));
  std::vector<hsize_t> start(d.size(), 0), count = d;
  start[0] = static_cast<hsize_t>(row0);
  count[0] = static_cast<hsize_t>(rows);
  lib_check(H5Sselect_hyperslab(s.file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
            "H5Sselect_hyperslab");
  s.mem_space = H5Handle(lib_check_id(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), "H5Screate_simple"),
                         H5Sclose);
  return s;
}
}  // namespace

void H5File::write_rows(const std::string& dataset, H5Type type, int64_t row0, int64_t rows, const void* data) {
  if (rows == 0) return;
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  RowSlab slab = row_slab(ds.id(), row0, rows, path_ + ":" + dataset);
  io_check(H5Dwrite(ds.id(), mem_type(type), slab.mem_space.id(), slab.file_space.id(), H5P_DEFAULT, data), path_,
           fmt::format("write rows of \"{}\"", dataset));
  io_check(ds.close(), path_, fmt::format("close dataset \"{}\"", dataset));
}

void H5File::read_rows(const std::string& dataset, H5Type type, int64_t row0, int64_t rows, void* out) const {
  if (rows == 0) return;
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  RowSlab slab = row_slab(ds.id(), row0, rows, path_ + ":" + dataset);
  if (H5Dread(ds.id(), mem_type(type), slab.mem_space.id(), slab.file_space.id(), H5P_DEFAULT, out) < 0)
    throw InputError(fmt::format("{}: cannot read rows of \"{}\"", path_, dataset));
}

void H5File::create_group(const std::string& group) {
  if (group.empty() || group == "/" || exists(group)) return;
  ensure_parent_groups(id(), path_, group + "/x");
}

void H5File::remove(const std::string& name) { unlink_if_exists(*this, name); }

bool H5File::is_group(const std::string& name) const {
  if (name != "/" && !exists(name)) return false;
  H5O_info_t info;
  read_check(H5Oget_info_by_name(id(), name.c_str(), &info, H5P_DEFAULT), path_, fmt::format("inspect \"{}\"", name));
  return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> H5File::children(const std::string& group) const {
  std::vector<std::string> out;
  if (!is_group(group)) return out;
  const std::string what = fmt::format("list group \"{}\"", group);
  H5Handle g(H5Gopen2(id(), group.c_str(), H5P_DEFAULT), H5Gclose);
  read_check(g.id() < 0 ? -1 : 0, path_, what);
  H5G_info_t info;
  read_check(H5Gget_info(g.id(), &info), path_, what);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size = H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    read_check(size < 0 ? -1 : 0, path_, what);
    std::string name(static_cast<size_t>(size), '\0');
    read_check(H5Lget_name_by_idx(g.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT) < 0
                   ? -1 : 0,
               path_, what);
    out.push_back(name);
  }
  return out;
}

namespace {
// Replaces attribute `name` of `object` by `data` of `mem_type`, stored as `file_type`: a scalar when `count` < 0,
// else a 1-D array of `count` values.
void replace_attr(hid_t file, const std::string& path, const std::string& object, const std::string& name,
                  hid_t file_type, hid_t mem_type, const void* data, int64_t count) {
  const std::string what = fmt::format("write attribute {}@{}", object, name);
  H5Handle obj = open_object(file, object, path);
  const htri_t there = H5Aexists(obj.id(), name.c_str());
  io_check(there, path, what);
  if (there > 0) io_check(H5Adelete(obj.id(), name.c_str()), path, what);
  const hsize_t n = count < 0 ? 0 : static_cast<hsize_t>(count);
  H5Handle space(io_check_id(count < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), path, what), H5Sclose);
  H5Handle attr(io_check_id(H5Acreate2(obj.id(), name.c_str(), file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT), path, what),
                H5Aclose);
  if (count != 0) io_check(H5Awrite(attr.id(), mem_type, data), path, what);
  io_check(attr.close(), path, what);
}
}  // namespace

void H5File::set_attr(const std::string& object, const std::string& name, const std::string& value) {
  H5Handle type = string_type();
  const char* p = value.c_str();
  replace_attr(id(), path_, object, name, type.id(), type.id(), &p, -1);
}

void H5File::set_attr(const std::string& object, const std::string& name, int64_t value) {
  replace_attr(id(), path_, object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, -1);
}

void H5File::set_attr(const std::string& object, const std::string& name, double value) {
  replace_attr(id(), path_, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, -1);
}

void H5File::set_attr(const std::string& object, const std::string& name, const std::vector<double>& values) {
  replace_attr(id(), path_, object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(),
               static_cast<int64_t>(values.size()));
}

bool H5File::has_attr(const std::string& object, const std::string& name) const {
  if (object != "/" && !exists(object)) return false;
  const htri_t there = H5Aexists_by_name(id(), object.c_str(), name.c_str(), H5P_DEFAULT);
  read_check(there, path_, fmt::format("look up attribute {}@{}", object, name));
  return there > 0;
}

namespace {
H5Handle open_attr(hid_t file, const std::string& object, const std::string& name, const std::string& path) {
  hid_t a = H5Aopen_by_name(file, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) throw InputError(fmt::format("{}: missing attribute {}@{}", path, object, name));
  return H5Handle(a, H5Aclose);
}
}  // namespace

std::string H5File::attr_string(const std::string& object, const std::string& name) const {
  const std::string what = fmt::format("read attribute {}@{}", object, name);
  H5Handle attr = open_attr(id(), object, name, path_);
  H5Handle type(H5Aget_type(attr.id()), H5Tclose);
  read_check(type.id() < 0 ? -1 : 0, path_, what);
  if (H5Tget_class(type.id()) != H5T_STRING)
    throw InputError(fmt::format("{}: attribute {}@{} is not a string", path_, object, name));
  const htri_t variable = H5Tis_variable_str(type.id());
  read_check(variable, path_, what);
  if (variable > 0) {
    H5Handle mem = string_type();
    char* value = nullptr;
    read_check(H5Aread(attr.id(), mem.id(), &value), path_, what);
    std::string out = value != nullptr ? value : "";
    read_check(H5free_memory(value), path_, what);
    return out;
  }
  const size_t size = H5Tget_size(type.id());
  read_check(size == 0 ? -1 : 0, path_, what);
  std::string out(size, '\0');
  read_check(H5Aread(attr.id(), type.id(), out.data()), path_, what);
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

int64_t H5File::attr_int(const std::string& object, const std::string& name) const {
  H5Handle attr = open_attr(id(), object, name, path_);
  int64_t value = 0;
  if (H5Aread(attr.id(), H5T_NATIVE_INT64, &value) < 0)
    throw InputError(fmt::format("{}: attribute {}@{} is not an integer", path_, object, name));
  return value;
}

double H5File::attr_double(const std::string& object, const std::string& name) const {
  H5Handle attr = open_attr(id(), object, name, path_);
  double value = 0;
  if (H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &value) < 0)
    throw InputError(fmt::format("{}: attribute {}@{} is not a number", path_, object, name));
  return value;
}

std::vector<double> H5File::attr_doubles(const std::string& object, const std::string& name) const {
  H5Handle attr = open_attr(id(), object, name, path_);
  H5Handle space(H5Aget_space(attr.id()), H5Sclose);
  read_check(space.id() < 0 ? -1 : 0, path_, fmt::format("read attribute {}@{}", object, name));
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  read_check(n < 0 ? -1 : 0, path_, fmt::format("read attribute {}@{}", object, name));
  std::vector<double> out(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (n > 0 && H5Aread(attr.id(), H5T_NATIVE_DOUBLE, out.data()) < 0)
    throw InputError(fmt::format("{}: attribute {}@{} is not numeric", path_, object, name));
  return out;
}

std::vector<std::string> H5File::attr_names(const std::string& object) const {
  H5Handle obj = open_object(id(), object, path_);
  const std::string what = fmt::format("list the attributes of \"{}\"", object);
  H5O_info_t info;
  read_check(H5Oget_info(obj.id(), &info), path_, what);
  std::vector<std::string> out;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const ssize_t size = H5Aget_name_by_idx(obj.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    read_check(size < 0 ? -1 : 0, path_, what);
    std::string name(static_cast<size_t>(size), '\0');
    read_check(H5Aget_name_by_idx(obj.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT) < 0
                   ? -1 : 0,
               path_, what);
    out.push_back(name);
  }
  return out;
}

}  // namespace divprune

namespace divprune {

void h5_copy_object(const H5File& src, const std::string& name, H5File& dst, const std::string& dst_name) {
  if (!src.exists(name)) throw InputError(fmt::format("{}: missing \"{}\"", src.path(), name));
  const std::string what = fmt::format("copy \"{}\" from {}", dst_name, src.path());
  H5Handle lcpl(io_check_id(H5Pcreate(H5P_LINK_CREATE), dst.path(), what), H5Pclose);
  io_check(H5Pset_create_intermediate_group(lcpl.id(), 1), dst.path(), what);
  io_check(H5Ocopy(src.id(), name.c_str(), dst.id(), dst_name.c_str(), H5P_DEFAULT, lcpl.id()), dst.path(), what);
}

void h5_copy_attributes(const H5File& src, const std::string& name, H5File& dst, const std::string& dst_name) {
  const std::string what = fmt::format("copy attributes of \"{}\" from {}", name, src.path());
  for (const std::string& attr_name : src.attr_names(name)) {
    H5Handle attr(H5Aopen_by_name(src.id(), name.c_str(), attr_name.c_str(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
    read_check(attr.id() < 0 ? -1 : 0, src.path(), what);
    H5Handle type(H5Aget_type(attr.id()), H5Tclose);
    H5Handle space(H5Aget_space(attr.id()), H5Sclose);
    read_check(type.id() < 0 || space.id() < 0 ? -1 : 0, src.path(), what);
    const hssize_t n = H5Sget_simple_extent_npoints(space.id());
    read_check(n < 0 ? -1 : 0, src.path(), what);
    std::vector<unsigned char> buffer(static_cast<size_t>(n) * H5Tget_size(type.id()) + 1);
    read_check(H5Aread(attr.id(), type.id(), buffer.data()), src.path(), what);
    H5Handle obj = open_object(dst.id(), dst_name, dst.path());
    const htri_t there = H5Aexists(obj.id(), attr_name.c_str());
    io_check(there, dst.path(), what);
    if (there > 0) io_check(H5Adelete(obj.id(), attr_name.c_str()), dst.path(), what);
    H5Handle out(io_check_id(H5Acreate2(obj.id(), attr_name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT),
                             dst.path(), what),
                 H5Aclose);
    const herr_t written = H5Awrite(out.id(), type.id(), buffer.data());
    // Variable-length strings were read as pointers HDF5 allocated: free them whatever the write did.
    if (H5Tis_variable_str(type.id()) > 0) H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, buffer.data());
    io_check(written, dst.path(), what);
    io_check(out.close(), dst.path(), what);
  }
}

}  // namespace divprune

#include "archive/h5.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace divprune {

namespace {
void silence_hdf5() {
  static bool done = false;
  if (!done) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    done = true;
  }
}

void ensure_parent_groups(hid_t file, const std::string& path) {
  size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    const std::string group = path.substr(0, pos);
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) <= 0) {
      hid_t g = H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (g < 0) throw InputError(fmt::format("cannot create HDF5 group \"{}\"", group));
      H5Gclose(g);
    }
  }
}
}  // namespace

H5File::H5File(const std::filesystem::path& path, H5Mode mode) : path_(path.string()) {
  silence_hdf5();
  hid_t id = -1;
  switch (mode) {
    case H5Mode::Read:
      if (!std::filesystem::exists(path)) throw InputError(fmt::format("{}: no such file", path_));
      id = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
      break;
    case H5Mode::ReadWrite:
      id = std::filesystem::exists(path) ? H5Fopen(path_.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
                                         : H5Fcreate(path_.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
      break;
    case H5Mode::Truncate:
      id = H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
      break;
  }
  if (id < 0) throw InputError(fmt::format("{}: cannot open as an HDF5 file", path_));
  file_ = H5Handle(id, H5Fclose);
}

bool H5File::exists(const std::string& name) const {
  // Check every prefix: H5Lexists fails on a path whose parent is missing.
  size_t pos = 0;
  while (true) {
    pos = name.find('/', pos + 1);
    const std::string prefix = name.substr(0, pos);
    if (H5Lexists(id(), prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (pos == std::string::npos) return true;
  }
}

Shape H5File::dims(const std::string& dataset) const {
  if (!exists(dataset)) throw InputError(fmt::format("{}: missing dataset \"{}\"", path_, dataset));
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: \"{}\" is not a dataset", path_, dataset));
  H5Handle space(H5Dget_space(ds.id()), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> d(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.id(), d.data(), nullptr);
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
  H5Handle ds(H5Dopen2(id(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  H5Handle type(H5Dget_type(ds.id()), H5Tclose);
  if (H5Tget_class(type.id()) != H5T_STRING) throw InputError(fmt::format("{}: \"{}\" is not a string", path_, dataset));
  if (H5Tis_variable_str(type.id()) > 0) {
    H5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));
    char* value = nullptr;
    if (H5Dread(ds.id(), mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0)
      throw InputError(fmt::format("{}: cannot read string \"{}\"", path_, dataset));
    std::string out = value != nullptr ? value : "";
    H5Handle space(H5Dget_space(ds.id()), H5Sclose);
    H5Dvlen_reclaim(mem.id(), space.id(), H5P_DEFAULT, &value);
    return out;
  }
  const size_t size = H5Tget_size(type.id());
  std::string out(size, '\0');
  if (H5Dread(ds.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw InputError(fmt::format("{}: cannot read string \"{}\"", path_, dataset));
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

void H5File::write_raw(const std::string& dataset, const Shape& dims, hid_t mem_type, hid_t file_type,
                       const void* data, int64_t chunk_rows) {
  ensure_parent_groups(id(), dataset);
  if (exists(dataset)) H5Ldelete(id(), dataset.c_str(), H5P_DEFAULT);
  std::vector<hsize_t> d(dims.begin(), dims.end());
  H5Handle space(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
  H5Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (chunk_rows > 0 && !d.empty() && shape_numel(dims) > 0) {
    std::vector<hsize_t> chunk = d;
    chunk[0] = std::min<hsize_t>(d[0], static_cast<hsize_t>(chunk_rows));
    H5Pset_chunk(props.id(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_shuffle(props.id());
    H5Pset_deflate(props.id(), 4);
  }
  H5Handle ds(H5Dcreate2(id(), dataset.c_str(), file_type, space.id(), H5P_DEFAULT, props.id(), H5P_DEFAULT), H5Dclose);
  if (ds.id() < 0) throw InputError(fmt::format("{}: cannot create dataset \"{}\"", path_, dataset));
  if (shape_numel(dims) > 0 && H5Dwrite(ds.id(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw InputError(fmt::format("{}: cannot write dataset \"{}\"", path_, dataset));
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
void H5File::flush() { H5Fflush(id(), H5F_SCOPE_GLOBAL); }

}  // namespace divprune

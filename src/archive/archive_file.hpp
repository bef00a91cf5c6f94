#pragma once
// Internal to src/archive: the HDF5 file under a RunArchive, one transaction at a time, and the annotation
// every dataset carries. Stages use the typed readers and writers (archive.hpp, search_archive.hpp,
// sensitivity_archive.hpp), never these.
#include <string>
#include <utility>

#include "archive/archive.hpp"
#include "archive/h5.hpp"

namespace divprune {

// The archive's file, with relative paths under its root group (RunArchive::root).
inline H5File open_archive(const RunArchive& archive, H5Mode mode) {
  H5File file(archive.path(), mode);
  if (!archive.root().empty()) file.set_root(archive.root());
  return file;
}
inline H5File open_archive_read(const RunArchive& archive) { return open_archive(archive, H5Mode::Read); }

// Opens (or creates) the archive, runs `write(file)` and closes the file, checked: a write transaction that
// returns has reached the file system (IoError otherwise).
template <typename Write>
void write_transaction(const RunArchive& archive, Write&& write) {
  H5File file = open_archive(archive, H5Mode::ReadWrite);
  std::forward<Write>(write)(file);
  file.close();
}

// Sets the `units` and `description` attributes every dataset carries.
void annotate(H5File& file, const std::string& dataset, const std::string& units, const std::string& description);

}  // namespace divprune

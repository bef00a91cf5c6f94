#pragma once
// Internal to src/archive: the HDF5 file under a RunArchive, one transaction at a time, and the annotation
// every dataset carries. Stages use the typed readers and writers (archive.hpp, search_archive.hpp,
// sensitivity_archive.hpp), never these.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "archive/archive.hpp"
#include "archive/h5.hpp"

namespace divprune {

// Room reserved on disk before every write transaction (H5File's `reserve`): enough for the metadata of any
// transaction and the data of the small ones; writers of large datasets add their size (archive_write_reserve).
// A full disk then stops the run before the transaction, never inside it: the archive stays readable and resumable.
inline constexpr int64_t kArchiveReserveBytes = int64_t{1} << 20;
// The reservation of a transaction that writes about `data_bytes` of dataset contents: those bytes (compression
// only makes them smaller, bar a gzip header per chunk) plus an eighth for chunk indexes, plus the base.
inline int64_t archive_write_reserve(int64_t data_bytes) { return kArchiveReserveBytes + data_bytes + data_bytes / 8; }

// The archive's file, with relative paths under its root group (RunArchive::root). A ReadWrite open reserves
// `reserve` bytes first (default kArchiveReserveBytes).
inline H5File open_archive(const RunArchive& archive, H5Mode mode, int64_t reserve = kArchiveReserveBytes) {
  H5File file(archive.path(), mode, mode == H5Mode::ReadWrite ? reserve : 0);
  if (!archive.root().empty()) file.set_root(archive.root());
  return file;
}
inline H5File open_archive_read(const RunArchive& archive) { return open_archive(archive, H5Mode::Read); }

// Opens (or creates) the archive, runs `write(file)` and closes the file, checked: a write transaction that
// returns has reached the file system (IoError otherwise).
template <typename Write>
void write_transaction(const RunArchive& archive, Write&& write, int64_t reserve = kArchiveReserveBytes) {
  H5File file = open_archive(archive, H5Mode::ReadWrite, reserve);
  std::forward<Write>(write)(file);
  file.close();
}

// Sets the `units` and `description` attributes every dataset carries.
void annotate(H5File& file, const std::string& dataset, const std::string& units, const std::string& description);

// Replaces /plans/<id> by a group holding the plan's identity (name, hash, source, YAML, order, run, replica,
// seconds, size) and feature vector, marked incomplete: the start of every plan record, complete or failed.
void write_plan_header(H5File& f, const PlanRecord& record);

// A group a stage finished: it carries the attribute complete = 1, written last in its transaction.
inline bool group_complete(const H5File& f, const std::string& group) {
  return f.exists(group) && f.has_attr(group, "complete") && f.attr_int(group, "complete") == 1;
}

// One-dimensional datasets and scalars with their annotation, as every typed writer stores them.
inline void write_annotated_doubles(H5File& f, const std::string& name, const std::vector<double>& values,
                                    const char* units, const char* description) {
  f.write_double(name, {static_cast<int64_t>(values.size())}, values.data());
  annotate(f, name, units, description);
}
inline void write_annotated_strings(H5File& f, const std::string& name, const std::vector<std::string>& values,
                                    const char* units, const char* description) {
  f.write_strings(name, values);
  annotate(f, name, units, description);
}
inline void write_annotated_scalar(H5File& f, const std::string& name, double value, const char* units,
                                   const char* description) {
  f.write_scalar(name, value);
  annotate(f, name, units, description);
}

}  // namespace divprune

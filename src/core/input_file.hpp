#pragma once
// Opening the user's input files safely. Every reader of a user-named file (checkpoint, config.json, run
// configuration, plan, tokenizer, text, HDF5 input) calls require_regular_file first: opening a FIFO for reading
// blocks until a writer appears (a run would hang forever), and a directory or device is never a valid input.
#include <filesystem>
#include <string>
#include <string_view>

namespace divprune {

// Throws InputError "<path>: cannot open <what>: <reason>" unless `path` names an existing regular file (after
// following symlinks). Reasons: the OS error (no such file, permission denied), or "not a regular file (a FIFO)"
// and the like. Does not open the file, so it cannot block.
void require_regular_file(const std::filesystem::path& path, std::string_view what);

// require_regular_file, then the whole file as bytes; a read failure is an InputError naming the file.
std::string read_input_file(const std::filesystem::path& path, std::string_view what);

// For a file the program will create or rewrite (the run archive, logits --out): throws InputError
// "<path>: cannot write <what>: ..." when the path exists but is not a regular file (/dev/null, a directory, a FIFO),
// or when one of its parent folders exists as something else than a directory (an archive path under a regular
// file). Missing parent folders are fine: they are created later.
void require_output_file_path(const std::filesystem::path& path, std::string_view what);

// "a FIFO", "a directory", "a character device", ... for messages; "a regular file" for a regular file.
std::string file_kind(const std::filesystem::path& path);

// True when a and b name the same file (the same inode, or the same path once normalised when either is
// missing); false when either is empty. Used to keep training, calibration and held-out text apart from the
// evaluation text.
bool same_file(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace divprune

#pragma once
// Logging goes through spdlog to stderr so that stdout carries only results (ids, `ppl ... tokens ...`).
// Under MPI only the coordinator logs at info level; other ranks log warnings and errors.
#include <spdlog/spdlog.h>

namespace divprune {

// Configures the default logger: level from `verbosity` (0 = warn, 1 = info, 2 = debug), rank prefix.
void setup_logging(int verbosity, int world_rank, int world_size);

}  // namespace divprune

#include "core/logging.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace divprune {

void setup_logging(int verbosity, int world_rank, int world_size) {
  auto logger = spdlog::stderr_color_mt(fmt::format("divprune-{}", world_rank));
  std::string prefix = world_size > 1 ? fmt::format("[rank {}] ", world_rank) : std::string();
  logger->set_pattern("[%H:%M:%S] " + prefix + "%v");
  spdlog::level::level_enum level = verbosity <= 0 ? spdlog::level::warn
                                    : verbosity == 1 ? spdlog::level::info
                                                     : spdlog::level::debug;
  if (world_rank > 0 && level < spdlog::level::warn) level = spdlog::level::warn;
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace divprune

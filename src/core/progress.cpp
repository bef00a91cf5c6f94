#include "core/progress.hpp"

#include <spdlog/spdlog.h>

namespace divprune {

Progress::Progress(std::string what, long total, double interval_s)
    : what_(std::move(what)), total_(total), interval_s_(interval_s),
      start_(std::chrono::steady_clock::now()), last_log_(start_) {}

void Progress::advance(long n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  double since_log = std::chrono::duration<double>(now - last_log_).count();
  if (since_log < interval_s_ && done_ < total_) return;
  last_log_ = now;
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? done_ / elapsed : 0.0;
  double eta = rate > 0 ? (total_ - done_) / rate : 0.0;
  spdlog::info("{}: {}/{} ({:.0f}%), {:.1f}/s, elapsed {:.0f}s, eta {:.0f}s", what_, done_, total_,
               total_ > 0 ? 100.0 * done_ / total_ : 100.0, rate, elapsed, eta);
}

}  // namespace divprune

#pragma once
// A progress line for long work (perplexity over a corpus, a sweep of plans): done/total, rate and ETA,
// logged at info level at most every `interval_s` seconds, so batch logs stay short.
#include <chrono>
#include <string>

namespace divprune {

class Progress {
 public:
  Progress(std::string what, long total, double interval_s = 5.0);
  // Adds `n` finished items; logs when the interval has passed or the work is complete.
  void advance(long n = 1);
  long done() const { return done_; }

 private:
  std::string what_;
  long total_;
  long done_ = 0;
  double interval_s_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_log_;
};

}  // namespace divprune

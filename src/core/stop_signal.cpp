#include "core/stop_signal.hpp"

#include <csignal>

namespace divprune {

namespace {
// sig_atomic_t: the only object type a handler may write with defined behaviour.
volatile std::sig_atomic_t g_stop_signal = 0;
volatile std::sig_atomic_t g_stop = 0;
bool g_progress = false;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  g_stop = 1;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool stop_requested() { return g_stop != 0; }

int stop_signal_number() { return static_cast<int>(g_stop_signal); }

void request_stop() { g_stop = 1; }

void note_progress() { g_progress = true; }

bool progress_made() { return g_progress; }

void reset_stop_request() {
  g_stop = 0;
  g_stop_signal = 0;
}

}  // namespace divprune
